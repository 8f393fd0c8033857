"""Deletes dated by Vast's own record of them: when billing stopped, from the instance's charges. Pure: no I/O.

Why: a delete cannot be recorded in the state it removes, so the fold dates it from Pulumi's clock, mapped
onto Vast's with the clock sample the deleting operation left in its checkpoint. Some flows leave none. A DIY
backend keeps an operation's *final* checkpoint only (`backups/` holds a copy of that same final checkpoint,
`<stack>.json.bak` the one intermediate save before it, and `PULUMI_RETAIN_CHECKPOINTS` is off by default:
pkg/backend/diy/state.go, backend.go), and after `pulumi destroy` it holds no resources at all: the refresh's
samples are gone with them. Against the emulator's frozen clock such a delete is dated from a stale sample
(days off; an instance billed $1.27 came out at $0.0004), and against a clock that jumps likewise.

Vast knows exactly: an instance stops accruing when it is destroyed, so the end of its last charge row (the
last accrued instant, on Vast's clock) is the destroy. The reports read it wherever a team's key is at hand
(`reconcile` always fetches the charges; `spend` and `chargeback` do when the key is available the same way),
and only for an instance the history says is gone: the delete keeps the operation the history names, and only
its moment comes from Vast. A destroy beyond the charges fetched (the last row ends at the window's end) is left
as the fold dated it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from reports.models import InstanceTimeline
from vastclient.models import Charge


def billing_ends(charges: Iterable[Charge], *, window_end: datetime) -> dict[int, datetime]:
    """Per instance, the last instant Vast billed it, when that is before `window_end` (the exclusive end of the
    days asked for: a row that reaches it may go on the next day)."""
    ends: dict[int, float] = {}
    for charge in charges:
        iid = charge.instance_id
        if charge.type != "instance" or iid is None or charge.end is None:
            continue
        ends[iid] = max(ends.get(iid, charge.end), charge.end)
    limit = window_end.timestamp()
    return {iid: datetime.fromtimestamp(end, UTC) for iid, end in ends.items() if end < limit}


def date_deletes(timelines: Iterable[InstanceTimeline], ends: Mapping[int, datetime]) -> list[InstanceTimeline]:
    """Timelines whose deletion was dated from Pulumi's clock, re-dated by Vast's billing end when known."""
    out = []
    for tl in timelines:
        last = tl.segments[-1] if tl.segments else None
        end = ends.get(tl.instance_id) if tl.instance_id is not None else None
        if last is None or last.end is None or last.end_basis != "update" or end is None:
            out.append(tl)
            continue
        redated = last.model_copy(update={"end": max(end, last.start), "end_basis": "vast"})
        out.append(tl.model_copy(update={"segments": (*tl.segments[:-1], redated)}))
    return out
