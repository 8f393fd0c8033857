"""Audit beyond Pulumi: Vast's own audit log (what each key did, through Pulumi or not: the console, the CLI, a
script) and budget enforcement's records (credit transfers, crossings, pauses, the guard's stops and starts), as
audit events beside the stacks' history. Pure: the entries and records come in, events go out.

Each Vast entry is marked with what it went through, from what the stacks' history and the ledger know:

- an instance created or destroyed: `stack <name>` when a stack's history records that very instance being
  created (or deleted), `outside Pulumi` otherwise (a label carrying a stack's ownership tag but unknown to its
  history says so: an interrupted create, or a copied label);
- a credit transfer: `vastguard budget allocate (ledger #n)` when the ledger holds that transfer, else
  `outside vastguard`;
- anything else (keys, roles, members, teams): `outside Pulumi`: account administration no stack owns yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fleet.budget_log import Crossing, GuardRecord, InstanceAction, Pause, Resume, Transfer
from fleet.costs import cents
from fleet.labels import stack_of
from reports.models import Actor, AuditEvent, InstanceChange, StackFold
from vastclient.models import AuditEntry


@dataclass(frozen=True)
class EventList:
    """Events already built, as an `AuditEventSource` (reports/audit.py)."""

    events: Sequence[AuditEvent]

    def audit_events(self, *, since: datetime | None, until: datetime | None) -> Iterator[AuditEvent]:
        yield from self.events


def _when(at: float | None) -> datetime:
    return datetime.fromtimestamp(at or 0, UTC)


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _by_instance(folds: Iterable[StackFold]) -> tuple[dict[int, str], dict[int, str]]:
    """instance id -> stack, for the instances each stack's history records as created, and as deleted."""
    created: dict[int, str] = {}
    deleted: dict[int, str] = {}
    for fold in folds:
        for event in fold.events:
            for change in event.changes:
                if change.instance_id is None:
                    continue
                if change.action == "created":
                    created.setdefault(change.instance_id, fold.stack)
                elif change.action == "deleted":
                    deleted.setdefault(change.instance_id, fold.stack)
    return created, deleted


def vast_audit_events(entries: Mapping[str, Sequence[AuditEntry]], folds: Sequence[StackFold],
                      transfers: Sequence[Transfer] = ()) -> list[AuditEvent]:
    """`entries`: each account's audit log, by the team it belongs to (or `platform`, the teams' owner)."""
    created, deleted = _by_instance(folds)
    matched: set[int] = set()
    out: list[AuditEvent] = []
    for team, log in sorted(entries.items()):
        for entry in log:
            args = entry.args if isinstance(entry.args, dict) else {}
            route = entry.api_route.removeprefix("api.")
            stack, through, message = "", "outside Pulumi", route
            changes: tuple[InstanceChange, ...] = ()
            if entry.api_route == "api.instance.create":
                instance_id = args.get("new_contract")
                label = args.get("label")
                iid = int(instance_id) if isinstance(instance_id, int | str) and str(instance_id).isdigit() else None
                if iid is not None and iid in created:
                    stack, through = created[iid], f"stack {created[iid]}"
                elif tagged := stack_of(label if isinstance(label, str) else None):
                    through = f"outside Pulumi (tagged for stack {tagged}, not in its history)"
                changes = (InstanceChange(name=str(label or f"instance {iid}"), instance_id=iid, action="created"),)
                message = f"rented instance {iid} from offer {args.get('id')}"
            elif entry.api_route == "api.instance.destroy":
                raw = args.get("id")
                iid = int(raw) if isinstance(raw, int | str) and str(raw).isdigit() else None
                if iid is not None and iid in deleted:
                    stack, through = deleted[iid], f"stack {deleted[iid]}"
                changes = (InstanceChange(name=f"instance {iid}", instance_id=iid, action="deleted"),)
                message = f"destroyed instance {iid}"
            elif entry.api_route == "api.user.transfer_credit":
                amount = _amount(args.get("amount"))
                match = next((t for t in transfers if id(t) not in matched and t.sent and t.intent.amount == amount
                              and t.intent.recipient == str(args.get("recipient"))
                              and (entry.created_at or 0) >= t.intent.at - 1), None)
                if match is not None:
                    matched.add(id(match))
                    stack, through = "", f"vastguard budget allocate ({match.intent.team}, ledger #{match.intent.seq})"
                else:
                    through = "outside vastguard"
                message = f"transferred ${cents(amount) if amount is not None else '?'} to {args.get('recipient')}"
            elif args:
                message = f"{route} " + ", ".join(f"{k}={v}" for k, v in sorted(args.items())
                                                  if k not in ("permissions", "key_params"))
            out.append(AuditEvent(
                project="", stack=stack, team=team, sequence=entry.id or 0, kind=route, started=_when(entry.created_at),
                ended=None, result="succeeded", message=message,
                actor=Actor(author=f"Vast key #{entry.api_key_id} (user {entry.user_id}, {entry.ip_address})"),
                changes=changes, source="vast", through=through))
    return out


def budget_audit_events(transfers: Sequence[Transfer], guard: Sequence[tuple[str, GuardRecord]],
                        actions: Sequence[InstanceAction]) -> list[AuditEvent]:
    """Budget enforcement's own records as events: who moved which credit, which crossing was alerted, who paused
    and resumed a team, which instance the guard stopped or started and why."""
    out: list[AuditEvent] = []
    for t in transfers:
        i, o = t.intent, t.outcome
        after = ""
        if o is not None and o.balance_after is not None:
            after = f"; balance ${cents(i.balance_before)} -> ${cents(o.balance_after)}"
        status = "pending" if o is None else o.status
        what = "closing the period" if i.closes else f"budget ${cents(i.budget)}, spent ${cents(i.spent)}, " \
                                                      f"disks to the period's end ${cents(i.reserve)}"
        out.append(AuditEvent(
            project="", stack="", team=i.team, sequence=i.seq, kind=f"credit {i.kind}", started=_when(i.at),
            ended=_when(o.at) if o and o.at else None, result="succeeded" if status == "sent" else status,
            message=f"{i.kind} ${cents(i.amount)} for {i.period} ({what}){after}" + (f"; {o.note}" if o and o.note
                                                                                     else ""),
            actor=Actor(author=i.by.who, exec_agent=i.by.command), source="vastguard",
            through=f"{i.by.command} (ledger #{i.seq})"))
    for name, record in guard:
        if isinstance(record, Pause):
            kind, message = "guard pause", f"paused for {record.window}: {record.reason}"
        elif isinstance(record, Resume):
            kind, message = "guard resume", f"resumed for {record.window}: {record.reason}"
        elif isinstance(record, Crossing) and record.window != "idle":
            kind = "guard alert"
            message = (f"{record.window}: committed ${cents(record.committed)} of ${cents(record.budget)} "
                       f"({(record.threshold * 100).normalize()}% crossed)")
        else:
            kind, message = "guard idle", f"{name}: GPU under its team's idle threshold"
        out.append(AuditEvent(project="", stack="", team=record.team, sequence=0, kind=kind,
                              started=_when(record.at), ended=None, result="succeeded", message=message,
                              actor=Actor(author=record.by.who, exec_agent=record.by.command), source="vastguard",
                              through=record.by.command))
    for action in actions:
        before, after = ("running", "stopped") if action.action == "stop" else ("stopped", "running")
        out.append(AuditEvent(
            project="", stack=action.stack or "", team=action.team, sequence=0, kind=f"guard {action.action}",
            started=_when(action.at), ended=None, result="succeeded",
            message=f"{action.action} instance {action.instance_id} ({action.reason}"
                    + (f" of {action.window})" if action.window else ")"),
            actor=Actor(author=action.by.who, exec_agent=action.by.command),
            changes=(InstanceChange(name=f"instance {action.instance_id}", instance_id=action.instance_id,
                                    action="changed", details=(f"state {before} -> {after} ({action.reason})",)),),
            source="vastguard", through=f"{action.by.command}, behind Pulumi's back"))
    return out
