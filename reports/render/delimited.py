"""CSV renderers: one row per fact (an operation, a cost component, an invoice line, a difference), so a
spreadsheet can pivot them. Money in cents without symbols; unknown amounts are empty cells, never 0."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from reports.models import AuditReport, InstanceChange, Invoice, ReconcileReport, SpendReport
from reports.render import plain_hours, plain_money, plain_rate


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _names(changes: Iterable[InstanceChange]) -> str:
    return ";".join(f"{c.name}#{c.instance_id}" if c.instance_id is not None else c.name for c in changes)


def audit_csv(report: AuditReport) -> str:
    header = ["project", "stack", "team", "sequence", "kind", "started", "ended", "result", "who", "author",
              "author_email", "committer", "committer_email", "ci_system", "ci_build", "ci_build_url", "commit",
              "commit_ref", "repository", "message", "created", "changed", "deleted", "details", "source", "through"]
    rows = []
    for e in report.events:
        details = ";".join(f"{c.name}: {', '.join(c.details)}" for c in e.changes if c.details)
        a = e.actor
        rows.append([e.project, e.stack, e.team, e.sequence, e.kind, e.started.isoformat(),
                     e.ended.isoformat() if e.ended else "", e.result, a.who, a.author or "", a.author_email or "",
                     a.committer or "", a.committer_email or "", a.ci_system or "", a.ci_build or "",
                     a.ci_build_url or "", e.commit or "", e.commit_ref or "", e.repository or "", e.message,
                     _names(e.of("created")), _names(e.of("changed")), _names(e.of("deleted")), details, e.source,
                     e.through or ""])
    return _csv(header, rows)


def spend_csv(report: SpendReport) -> str:
    header = ["team", "period", "stack", "instance", "instance_id", "gpu_name", "num_gpus", "component", "hours",
              "hourly", "cost"]
    rows = [
        [team.team, period.period, inst.stack, inst.name, inst.instance_id or "", inst.gpu_name or "",
         inst.num_gpus or "", c.name, plain_hours(c.hours), plain_rate(c.hourly), plain_money(c.cost)]
        for team in report.teams for period in team.periods for inst in period.instances for c in inst.components
    ]
    return _csv(header, rows)


def invoice_csv(invoice: Invoice) -> str:
    header = ["team", "month", "stack", "instance", "instance_id", "gpu_name", "num_gpus", "usage", "hours",
              "hourly", "cost"]
    rows: list[list[object]] = [
        [invoice.team, invoice.month, ln.stack, ln.instance, ln.instance_id or "", ln.gpu_name or "",
         ln.num_gpus or "", ln.component, plain_hours(ln.hours), plain_rate(ln.hourly), plain_money(ln.cost)]
        for ln in invoice.lines
    ]
    rows.append([invoice.team, invoice.month, "", "TOTAL", "", "", "", "", "", "", plain_money(invoice.total)])
    return _csv(header, rows)


def reconcile_csv(report: ReconcileReport) -> str:
    header = ["team", "instance_id", "stack", "name", "gpu_name", "label", "on_demand_hours", "interruptible_hours",
              "billed_gpu_hours", "reconstructed", "billed", "difference", "status"]
    rows = [[r.team, r.instance_id or "", r.stack or "", r.name or "", r.gpu_name or "", r.label or "",
             plain_hours(r.on_demand_hours), plain_hours(r.interruptible_hours),
             "" if r.billed_gpu_hours is None else plain_hours(r.billed_gpu_hours),
             plain_money(r.reconstructed), plain_money(r.billed), plain_money(r.difference), r.status]
            for r in report.rows]
    return _csv(header, rows)
