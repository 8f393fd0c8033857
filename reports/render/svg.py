"""The month's daily spend per team, each against its daily budget: an SVG written by hand.

One panel per team (small multiples share a day axis, so teams with very different budgets stay readable,
which one stacked chart does not allow): a bar per day, the team's daily budget as a dashed line, days over
budget in red, days with an unknown price marked `?`. Text is real SVG text (selectable, searchable,
readable at any zoom), and the output is byte-for-byte deterministic, so it is tested against a golden file.

Why not matplotlib: it would be the heaviest dependency of the product (numpy, pillow, fonttools, kiwisolver,
contourpy: tens of MB of native wheels) for rectangles, lines and text, and its SVG output carries a
timestamp and random ids that a golden file cannot hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from reports.models import ChargebackReport, DailySpend, Invoice
from reports.render import money

WIDTH = 960
LEFT, RIGHT = 78, 24
PANEL_H, PANEL_GAP, TOP, BOTTOM = 150, 54, 70, 44
BAR = "#4e79a7"
OVER = "#e15759"
BUDGET = "#b07aa1"
GRID = "#e4e4e4"
INK = "#222222"
MUTED = "#6b6b6b"


def nice_step(maximum: float, ticks: int = 4) -> float:
    """A 1/2/2.5/5 x 10^k step giving about `ticks` gridlines up to `maximum`."""
    if maximum <= 0:
        return 1.0
    raw = maximum / ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(f * magnitude for f in (1, 2, 2.5, 5, 10) if raw <= f * magnitude + 1e-12)


def _num(value: float) -> str:
    """Coordinates with two decimals at most and no trailing zeros: stable text across platforms."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _text(x: float, y: float, content: str, *, size: int = 12, anchor: str = "start", fill: str = INK,
          weight: str = "normal") -> str:
    attrs = f'x="{_num(x)}" y="{_num(y)}" font-size="{size}" fill="{fill}"'
    if anchor != "start":
        attrs += f' text-anchor="{anchor}"'
    if weight != "normal":
        attrs += f' font-weight="{weight}"'
    return f"<text {attrs}>{escape(content)}</text>"


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str | None = None) -> str:
    body = f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" fill="{fill}"'
    return f"{body}><title>{escape(title)}</title></rect>" if title else f"{body}/>"


def _line(x0: float, y0: float, x1: float, y1: float, stroke: str, *, dash: str | None = None,
          width: float = 1) -> str:
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{_num(x0)}" y1="{_num(y0)}" x2="{_num(x1)}" y2="{_num(y1)}" stroke="{stroke}" '
            f'stroke-width="{_num(width)}"{extra}/>')


def _panel(invoice: Invoice, days: Sequence[DailySpend], top: float) -> list[str]:
    plot_w = WIDTH - LEFT - RIGHT
    slot = plot_w / max(1, len(days))
    budget = invoice.daily_budget
    # 8% headroom above the tallest bar or the budget line, so the line's label stays inside the panel
    peak = 1.08 * max([float(d.cost) for d in days] + ([float(budget)] if budget is not None else []) + [0.0])
    step = nice_step(peak)
    ceiling = step * max(1, math.ceil(peak / step - 1e-9)) if peak > 0 else step * 4
    base = top + PANEL_H

    def y_of(value: float) -> float:
        return base - value / ceiling * PANEL_H

    over = sum(1 for d in days if budget is not None and d.cost > budget)
    unknown = sum(d.unknown for d in days)
    heading = f"{invoice.team}: {money(invoice.total)} in {invoice.month}"
    if budget is not None:
        heading += f", daily budget {money(budget)}"
        heading += f", {over} day(s) over budget" if over else ", never over budget"
    else:
        heading += ", no daily budget known"
    if unknown:
        heading += f"; {unknown} slice(s) with an unknown price not drawn"
    out = [f'<g id={quoteattr("team-" + invoice.team)}>', _text(LEFT, top - 12, heading, size=14, weight="bold")]
    tick = 0.0
    while tick <= ceiling + 1e-9:
        y = y_of(tick)
        out.append(_line(LEFT, y, LEFT + plot_w, y, GRID))
        out.append(_text(LEFT - 8, y + 4, f"${tick:,.2f}", size=11, anchor="end", fill=MUTED))
        tick += step
    for i, d in enumerate(days):
        x = LEFT + i * slot
        height = float(d.cost) / ceiling * PANEL_H
        colour = OVER if budget is not None and d.cost > budget else BAR
        if height > 0:
            out.append(_rect(x + slot * 0.15, base - height, slot * 0.7, height, colour,
                             title=f"{invoice.team} {d.day.isoformat()}: {money(d.cost)}"))
        if d.unknown:
            out.append(_text(x + slot / 2, base - height - 4, "?", size=11, anchor="middle", fill=OVER))
        if len(days) <= 16 or d.day.day % 2 == 1:
            out.append(_text(x + slot / 2, base + 15, str(d.day.day), size=10, anchor="middle", fill=MUTED))
    out.append(_line(LEFT, base, LEFT + plot_w, base, MUTED))
    if budget is not None:
        y = y_of(float(budget))
        out.append(_line(LEFT, y, LEFT + plot_w, y, BUDGET, dash="6 4", width=2))
        out.append(_text(LEFT + plot_w, y - 5, f"budget {money(budget)}/day", size=11, anchor="end", fill=BUDGET))
    out.append("</g>")
    return out


def daily_spend_svg(report: ChargebackReport) -> str:
    """Every team of the report in the invoices' order; `report.daily` holds a row per team and day."""
    by_team: dict[str, list[DailySpend]] = {}
    for d in report.daily:
        by_team.setdefault(d.team, []).append(d)
    panels = len(report.invoices)
    height = TOP + 24 + max(1, panels) * PANEL_H + max(0, panels - 1) * PANEL_GAP + BOTTOM
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif">',
        f"<title>Daily GPU spend per team, {escape(report.month)}</title>",
        _rect(0, 0, WIDTH, height, "#ffffff"),
        _text(LEFT, 30, f"Daily GPU spend per team, {report.month} (UTC days)", size=18, weight="bold"),
        _text(LEFT, 50, "bars: spend reconstructed from stack history; dashed line: the team's daily budget; "
                        "red: over budget", size=12, fill=MUTED),
    ]
    for index, invoice in enumerate(report.invoices):
        top = TOP + 24 + index * (PANEL_H + PANEL_GAP)
        out += _panel(invoice, sorted(by_team.get(invoice.team, []), key=lambda d: d.day), top)
    if not report.invoices:
        out.append(_text(LEFT, TOP + 40, "no team spent anything this month", size=14, fill=MUTED))
    out.append("</svg>")
    return "\n".join(out) + "\n"
