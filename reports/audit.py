"""Select audit events from folded stacks. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from reports.models import AuditReport, StackFold


def audit_report(folds: Iterable[StackFold], *, generated_at: datetime, since: datetime | None = None,
                 until: datetime | None = None, kinds: Sequence[str] = (), teams: Sequence[str] = ()
                 ) -> AuditReport:
    """Events in [since, until) by start time, oldest first across stacks; filters combine with AND."""
    events = [
        e for fold in folds for e in fold.events
        if (not teams or e.team in teams) and (not kinds or e.kind in kinds)
        and (since is None or e.started >= since) and (until is None or e.started < until)
    ]
    events.sort(key=lambda e: (e.started, e.project, e.stack, e.sequence))
    return AuditReport(generated_at=generated_at, since=since, until=until, events=tuple(events))
