"""Markdown invoices: what a team lead reads or pastes into a ticket."""

from __future__ import annotations

from reports.models import Invoice
from reports.render import hours, money, rate

_USAGE = {"running": "GPU (running, on demand)", "interruptible": "GPU (running, interruptible: its bid)",
          "storage": "storage (stopped or outbid)"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def invoice_markdown(invoice: Invoice) -> str:
    lines = [
        f"# GPU chargeback: {invoice.team}, {invoice.month}",
        "",
        "| Stack | Instance | Vast id | GPU | Usage | Hours | $/h | Cost |",
        "|---|---|---:|---|---|---:|---:|---:|",
    ]
    for ln in invoice.lines:
        gpu = f"{ln.num_gpus}x {ln.gpu_name}" if ln.num_gpus and ln.gpu_name else (ln.gpu_name or "")
        lines.append(
            f"| {_cell(ln.stack)} | {_cell(ln.instance)} | {ln.instance_id or ''} | {_cell(gpu)} | "
            f"{_USAGE[ln.component]} | {hours(ln.hours)} | {rate(ln.hourly)} | {money(ln.cost)} |"
        )
    if not invoice.lines:
        lines.append("| | no GPU instances this month | | | | | | $0.00 |")
    lines += ["", f"**Total: {money(invoice.total)}**"]
    if invoice.unknown_lines:
        lines += ["", f"{invoice.unknown_lines} line(s) have an unknown price and are not in the total."]
    lines += ["", "Hours are reconstructed from the stack's Pulumi update history; the total is the exact sum of "
              "the lines, rounded once to the cent."]
    return "\n".join(lines) + "\n"
