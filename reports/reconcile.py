"""Reconstructed spend vs what Vast.ai charged each team's key, per instance. Pure: no I/O.

Joins on the Vast instance id (`source: instance-<id>` in a charge). What Vast billed under a team's key for
an instance no stack ever declared is shadow spend: rented outside Pulumi (the console, the CLI, a script)
with the team's key, invisible to the policies that govern the stacks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from reports.costing import cost, hours, slices
from reports.models import InstanceTimeline, ReconcileReport, ReconcileRow, ReconcileStatus, TeamReconciliation
from vastclient.models import Charge


@dataclass
class _Known:
    team: str
    stack: str
    name: str
    gpu_name: str | None
    reconstructed: Decimal | None
    on_demand_micros: int = 0
    interruptible_micros: int = 0

    def hours(self) -> dict[str, Decimal]:
        return {"on_demand_hours": hours(self.on_demand_micros),
                "interruptible_hours": hours(self.interruptible_micros)}


def window(start_day: date, end_day: date) -> tuple[datetime, datetime]:
    """Charges are asked for by whole UTC days, both ends included."""
    first = datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC)
    last = datetime(end_day.year, end_day.month, end_day.day, tzinfo=UTC) + timedelta(days=1)
    return first, last


def _status(difference: Decimal, threshold: Decimal) -> ReconcileStatus:
    if abs(difference) <= threshold:
        return "match"
    return "over" if difference > 0 else "under"


def reconcile(timelines: Sequence[InstanceTimeline], charges: Mapping[str, Iterable[Charge]], *, start_day: date,
              end_day: date, now: datetime, threshold: Decimal, generated_at: datetime,
              include_matches: bool = False) -> ReconcileReport:
    """`charges` maps each team to what Vast charged its key over [start_day, end_day]; only those teams are
    reconciled. `timelines` should cover every stack, so an instance declared anywhere is not called shadow."""
    start, end = window(start_day, end_day)
    known: dict[int, _Known] = {}
    for tl in timelines:
        if tl.instance_id is not None and tl.instance_id not in known:
            known[tl.instance_id] = _Known(team=tl.team, stack=tl.stack, name=tl.name, gpu_name=tl.gpu_name,
                                           reconstructed=Decimal(0))
    for s in slices(timelines, start=start, end=end, now=now, granularity="month"):
        entry = known.get(s.instance_id) if s.instance_id is not None else None
        if entry is None:
            continue
        if s.component == "running":
            entry.on_demand_micros += s.micros
        elif s.component == "interruptible":
            entry.interruptible_micros += s.micros
        if entry.reconstructed is None:
            continue
        amount = cost(s.hourly, s.micros)
        entry.reconstructed = None if amount is None else entry.reconstructed + amount

    rows: list[ReconcileRow] = []
    totals: list[TeamReconciliation] = []
    for team in sorted(charges):
        billed: dict[int, Decimal] = defaultdict(Decimal)
        gpu_hours: dict[int, Decimal] = defaultdict(Decimal)
        labels: dict[int, str | None] = {}
        for charge in charges[team]:
            iid = charge.instance_id
            if charge.type != "instance" or iid is None:
                continue
            billed[iid] += charge.amount
            gpu_hours[iid] += sum((i.quantity or Decimal(0) for i in charge.items if i.type == "gpu"), Decimal(0))
            labels.setdefault(iid, charge.metadata.label)
        team_reconstructed, team_billed, team_shadow = Decimal(0), Decimal(0), Decimal(0)
        team_hours = {"on_demand_hours": Decimal(0), "interruptible_hours": Decimal(0)}
        for entry in known.values():
            if entry.team == team:
                for key, value in entry.hours().items():
                    team_hours[key] += value
        for iid in sorted(billed):
            amount = billed[iid]
            team_billed += amount
            entry = known.get(iid)
            if entry is None or entry.team != team:
                team_shadow += amount
                rows.append(ReconcileRow(
                    team=team, instance_id=iid, stack=entry.stack if entry else None,
                    name=entry.name if entry else None, gpu_name=entry.gpu_name if entry else None,
                    label=labels[iid], reconstructed=None, billed=amount, difference=amount,
                    billed_gpu_hours=gpu_hours[iid], status="shadow" if entry is None else "other-team"))
                continue
            if entry.reconstructed is None:
                rows.append(ReconcileRow(team=team, instance_id=iid, stack=entry.stack, name=entry.name,
                                         gpu_name=entry.gpu_name, label=labels[iid], reconstructed=None,
                                         billed=amount, difference=None, billed_gpu_hours=gpu_hours[iid],
                                         status="unknown-price", **entry.hours()))
                continue
            team_reconstructed += entry.reconstructed
            difference = amount - entry.reconstructed
            status = _status(difference, threshold)
            if status != "match" or include_matches:
                rows.append(ReconcileRow(team=team, instance_id=iid, stack=entry.stack, name=entry.name,
                                         gpu_name=entry.gpu_name, label=labels[iid],
                                         reconstructed=entry.reconstructed, billed=amount, difference=difference,
                                         billed_gpu_hours=gpu_hours[iid], status=status, **entry.hours()))
        for iid, entry in sorted(known.items()):
            if entry.team != team or iid in billed:
                continue
            if entry.reconstructed is None:
                rows.append(ReconcileRow(team=team, instance_id=iid, stack=entry.stack, name=entry.name,
                                         gpu_name=entry.gpu_name, reconstructed=None, billed=None,
                                         difference=None, status="unknown-price", **entry.hours()))
                continue
            team_reconstructed += entry.reconstructed
            if entry.reconstructed > threshold:
                rows.append(ReconcileRow(team=team, instance_id=iid, stack=entry.stack, name=entry.name,
                                         gpu_name=entry.gpu_name, reconstructed=entry.reconstructed,
                                         billed=Decimal(0), difference=-entry.reconstructed, status="unbilled",
                                         **entry.hours()))
        totals.append(TeamReconciliation(team=team, reconstructed=team_reconstructed, billed=team_billed,
                                         shadow=team_shadow, billed_gpu_hours=sum(gpu_hours.values(), Decimal(0)),
                                         **team_hours))
    return ReconcileReport(generated_at=generated_at, start_day=start_day, end_day=end_day, threshold=threshold,
                           teams=tuple(totals), rows=tuple(rows))
