"""Terminal tables (rich). `to_text` renders them without colour at a fixed width for golden files."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from decimal import Decimal

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from reports.models import (
    AuditEvent,
    AuditReport,
    ChargebackReport,
    InstanceChange,
    Invoice,
    ReconcileReport,
    SpendReport,
)
from reports.render import hours, money, short_commit, when

_MARK = {"created": "+", "changed": "~", "deleted": "-"}
_RESULT_STYLE = {"succeeded": "green", "failed": "bold red", "in-progress": "yellow"}
_STATUS_STYLE = {"shadow": "bold red", "other-team": "red", "over": "yellow", "under": "yellow",
                 "unbilled": "cyan", "unknown-price": "magenta", "match": "green"}


def _change(change: InstanceChange) -> str:
    ident = f" #{change.instance_id}" if change.instance_id is not None else ""
    gpu = f" ({change.gpu_name})" if change.gpu_name and change.action != "changed" else ""
    detail = f": {'; '.join(change.details)}" if change.details else ""
    return f"{_MARK[change.action]} {change.name}{ident}{gpu}{detail}"


def _instances(event: AuditEvent) -> str:
    lines = [_change(c) for c in event.changes]
    if event.unknown_creates:
        lines.append(f"? {event.unknown_creates} create(s) interrupted: outcome unknown, check for shadow spend")
    if event.checkpoint_missing:
        lines.append("(checkpoint missing: changes not known)")
    return "\n".join(lines)


def audit_table(report: AuditReport) -> Table:
    table = Table(title=f"Audit trail: {len(report.events)} operation(s)", show_lines=True, expand=False)
    for name, kwargs in (("Stack", {}), ("#", {"justify": "right"}), ("Kind", {}), ("Started (UTC)", {}),
                         ("Result", {}), ("Who", {}), ("Commit", {}), ("Message", {}), ("Instances", {})):
        table.add_column(name, **kwargs)  # type: ignore[arg-type]
    for e in report.events:
        stack = e.stack if e.team == e.stack else f"{e.stack}\n({e.team})" if e.stack else f"({e.team})"
        kind = e.kind if e.source == "stack" else f"{e.source}: {e.kind}\n{e.through or ''}".rstrip()
        table.add_row(stack, str(e.sequence), kind, when(e.started),
                      Text(e.result, style=_RESULT_STYLE.get(e.result, "")), e.actor.who, short_commit(e.commit),
                      e.message, _instances(e))
    return table


def spend_table(report: SpendReport, *, detail: bool = False) -> Table:
    unit = "Day" if report.granularity == "day" else "Month"
    table = Table(title=f"Spend {when(report.start)} .. {when(report.end)} UTC", show_footer=True)
    table.add_column("Team", footer="Total")
    table.add_column(unit)
    if detail:
        table.add_column("Instance")
        table.add_column("GPU")
    table.add_column("On-demand h", justify="right")
    table.add_column("Interruptible h", justify="right")
    table.add_column("Stopped h", justify="right")
    table.add_column("Cost", justify="right", footer=_total(report.known, report.unknown_components))
    for team in report.teams:
        for period in team.periods:
            if detail:
                for inst in period.instances:
                    ident = f"{inst.stack}/{inst.name}" + (f" #{inst.instance_id}" if inst.instance_id else "")
                    table.add_row(team.team, period.period, ident, inst.gpu_name or "", hours(inst.running_hours),
                                  hours(inst.interruptible_hours), hours(inst.storage_hours), money(inst.cost))
            else:
                table.add_row(team.team, period.period, hours(period.running_hours),
                              hours(period.interruptible_hours), hours(period.storage_hours),
                              _total(period.known, period.unknown_components))
        blanks = ["", ""] if detail else []
        table.add_row(Text(f"{team.team} total", style="bold"), "", *blanks, "", "", "",
                      Text(_total(team.known, team.unknown_components), style="bold"), end_section=True)
    return table


def _total(known: Decimal, unknown: int) -> str:
    text = money(known)
    return f"{text} + {unknown} unknown" if unknown else text


def chargeback_table(report: ChargebackReport) -> Table:
    table = Table(title=f"Chargeback {report.month}", show_footer=True)
    table.add_column("Team", footer="Total")
    table.add_column("Lines", justify="right")
    table.add_column("Instances", justify="right")
    table.add_column("On-demand GPU h", justify="right")
    table.add_column("Interruptible GPU h", justify="right")
    grand = sum((i.total for i in report.invoices), Decimal(0))
    table.add_column("Total", justify="right", footer=money(grand))
    for inv in report.invoices:
        def gpu_hours(component: str, inv: Invoice = inv) -> Decimal:
            return sum((ln.hours * (ln.num_gpus or 1) for ln in inv.lines if ln.component == component), Decimal(0))

        instances = len({(ln.stack, ln.instance, ln.instance_id) for ln in inv.lines})
        total = money(inv.total) + (f" + {inv.unknown_lines} unknown" if inv.unknown_lines else "")
        table.add_row(inv.team, str(len(inv.lines)), str(instances), hours(gpu_hours("running")),
                      hours(gpu_hours("interruptible")), total)
    return table


def reconcile_tables(report: ReconcileReport) -> list[Table]:
    totals = Table(title=f"Reconciliation {report.start_day} .. {report.end_day} (threshold {money(report.threshold)})")
    for name in ("Team", "On-demand h", "Interruptible h", "Vast GPU h", "Reconstructed", "Billed by Vast",
                 "Difference", "Shadow spend"):
        totals.add_column(name, justify="left" if name == "Team" else "right")
    for t in report.teams:
        totals.add_row(t.team, hours(t.on_demand_hours), hours(t.interruptible_hours), hours(t.billed_gpu_hours),
                       money(t.reconstructed), money(t.billed), money(t.billed - t.reconstructed),
                       Text(money(t.shadow), style="bold red" if t.shadow else ""))
    tables = [totals]
    if report.rows:
        rows = Table(title=f"{len(report.rows)} difference(s)")
        for name in ("Team", "Instance", "Stack / name", "GPU", "Label", "Reconstructed", "Billed", "Difference",
                     "Status"):
            rows.add_column(name, justify="right" if name in {"Reconstructed", "Billed", "Difference"} else "left")
        for r in report.rows:
            where = f"{r.stack}/{r.name}" if r.stack else "(no stack)"
            rows.add_row(r.team, str(r.instance_id or ""), where, r.gpu_name or "", r.label or "",
                         money(r.reconstructed) if r.reconstructed is not None else "-",
                         money(r.billed) if r.billed is not None else "-", money(r.difference),
                         Text(r.status, style=_STATUS_STYLE.get(r.status, "")))
        tables.append(rows)
    return tables


def to_text(renderables: Iterable[RenderableType], *, width: int = 160) -> str:
    """Plain text as a terminal of `width` columns would show it: stable across machines, for golden files."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False, record=True,
                      legacy_windows=False, emoji=False)
    for item in renderables:
        console.print(item)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def print_all(renderables: Sequence[RenderableType], console: Console) -> None:
    for item in renderables:
        console.print(item)
