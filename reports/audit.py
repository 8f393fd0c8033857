"""Select audit events from their sources. Pure.

Stack history is one source of audit events; issue 12's client for Vast's own audit log (what each key did,
console and CLI included) will be another: an `AuditEventSource` yields `AuditEvent`s, and `audit_report`
merges every source it is given into one time-ordered trail.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from reports.models import AuditEvent, AuditReport, StackFold


class AuditEventSource(Protocol):
    """Somewhere audit events come from; `since`/`until` let a remote source fetch only the window."""

    def audit_events(self, *, since: datetime | None, until: datetime | None) -> Iterable[AuditEvent]: ...


@dataclass(frozen=True)
class StackHistoryEvents:
    """Every update, refresh and destroy the folded stacks' history records."""

    folds: Sequence[StackFold]

    def audit_events(self, *, since: datetime | None, until: datetime | None) -> Iterator[AuditEvent]:
        for fold in self.folds:
            yield from fold.events


def audit_report(folds: Iterable[StackFold], *, generated_at: datetime, since: datetime | None = None,
                 until: datetime | None = None, kinds: Sequence[str] = (), teams: Sequence[str] = (),
                 sources: Sequence[AuditEventSource] = ()) -> AuditReport:
    """Events in [since, until) by start time, oldest first across stacks and `sources`; filters combine with
    AND."""
    everything: list[AuditEventSource] = [StackHistoryEvents(tuple(folds)), *sources]
    events = [
        e for source in everything for e in source.audit_events(since=since, until=until)
        if (not teams or e.team in teams) and (not kinds or e.kind in kinds)
        and (since is None or e.started >= since) and (until is None or e.started < until)
    ]
    events.sort(key=lambda e: (e.started, e.project, e.stack, e.sequence))
    return AuditReport(generated_at=generated_at, since=since, until=until, events=tuple(events))
