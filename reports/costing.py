"""Instance timelines -> cost lines -> spend per team and period, and monthly invoices. Pure: no I/O.

Durations are summed as integer microseconds and turned into hours and money once per line, so the totals are
exact Decimals (a per-second float sum drifts by cents over a month of 50 instances). Rounding to cents is
left to the renderers; JSON carries the exact amounts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from reports.models import (
    ChargebackReport,
    ComponentName,
    CostComponent,
    DailySpend,
    Granularity,
    InstanceCost,
    InstanceTimeline,
    Invoice,
    InvoiceLine,
    PeriodCost,
    SpendReport,
    TeamSpend,
)

MICROS_PER_HOUR = Decimal(3_600_000_000)
PRECISION = Decimal("1e-10")
"""Costs are kept to 1e-10 $: far below any bill (Vast's own items are micro-dollars) and short enough that a
JSON amount reads as a number, not as 28 digits of a repeating fraction."""


@dataclass(frozen=True)
class CostSlice:
    """Time one instance spent at one rate within one period."""

    team: str
    stack: str
    name: str
    instance_id: int | None
    gpu_name: str | None
    num_gpus: int | None
    period: str
    component: ComponentName
    hourly: Decimal | None
    micros: int
    estimated: bool


def hours(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS_PER_HOUR).quantize(PRECISION)


def cost(hourly: Decimal | None, micros: int) -> Decimal | None:
    return None if hourly is None else (hourly * Decimal(micros) / MICROS_PER_HOUR).quantize(PRECISION)


def _micros(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def period_label(moment: datetime, granularity: Granularity) -> str:
    return moment.strftime("%Y-%m-%d" if granularity == "day" else "%Y-%m")


def next_boundary(moment: datetime, granularity: Granularity) -> datetime:
    if granularity == "day":
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
    if moment.month == 12:
        return datetime(moment.year + 1, 1, 1, tzinfo=UTC)
    return datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)


def month_range(month: str) -> tuple[datetime, datetime]:
    """`YYYY-MM` -> [first instant, first instant of the next month)."""
    try:
        first = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"month {month!r} is not YYYY-MM (e.g. 2026-11)") from None
    return first, next_boundary(first, "month")


def slices(timelines: Iterable[InstanceTimeline], *, start: datetime, end: datetime, now: datetime,
           granularity: Granularity) -> Iterator[CostSlice]:
    """Cut every segment to [start, min(end, now)) and split it at period boundaries (UTC)."""
    stop = min(end, now)
    for tl in timelines:
        for seg in tl.segments:
            seg_end = stop if seg.end is None else min(seg.end, stop)
            cursor = max(seg.start, start)
            estimated = seg.start_basis == "update" or seg.end_basis == "update"
            while cursor < seg_end:
                boundary = min(next_boundary(cursor, granularity), seg_end)
                yield CostSlice(team=tl.team, stack=tl.stack, name=tl.name, instance_id=tl.instance_id,
                                gpu_name=tl.gpu_name, num_gpus=tl.num_gpus,
                                period=period_label(cursor, granularity), component=seg.component,
                                hourly=seg.hourly, micros=_micros(boundary - cursor), estimated=estimated)
                cursor = boundary


_InstanceKey = tuple[str, str, int | None, str | None, int | None]


def _instance_costs(groups: dict[_InstanceKey, dict[tuple[ComponentName, Decimal | None], int]]
                    ) -> tuple[InstanceCost, ...]:
    out = []
    for (stack, name, instance_id, gpu, num_gpus), parts in sorted(groups.items(), key=lambda kv: kv[0][:3]):
        components = tuple(
            CostComponent(name=component, hours=hours(micros), hourly=rate, cost=cost(rate, micros))
            for (component, rate), micros in sorted(parts.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))
        )
        out.append(InstanceCost(stack=stack, name=name, instance_id=instance_id, gpu_name=gpu, num_gpus=num_gpus,
                                components=components))
    return tuple(out)


def _known_and_unknown(instances: Sequence[InstanceCost]) -> tuple[Decimal, int]:
    known, unknown = Decimal(0), 0
    for inst in instances:
        for c in inst.components:
            if c.cost is None:
                unknown += 1
            else:
                known += c.cost
    return known, unknown


def spend_report(timelines: Iterable[InstanceTimeline], *, start: datetime, end: datetime, now: datetime,
                 granularity: Granularity, generated_at: datetime) -> SpendReport:
    tree: dict[str, dict[str, dict[_InstanceKey, dict[tuple[ComponentName, Decimal | None], int]]]] = (
        defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(int)))))
    estimated = 0
    for s in slices(timelines, start=start, end=end, now=now, granularity=granularity):
        key = (s.stack, s.name, s.instance_id, s.gpu_name, s.num_gpus)
        tree[s.team][s.period][key][(s.component, s.hourly)] += s.micros
        estimated += s.estimated
    teams = []
    for team in sorted(tree):
        periods = []
        for period in sorted(tree[team]):
            instances = _instance_costs(tree[team][period])
            known, unknown = _known_and_unknown(instances)
            periods.append(PeriodCost(period=period, instances=instances, known=known, unknown_components=unknown))
        teams.append(TeamSpend(team=team, periods=tuple(periods), known=sum((p.known for p in periods), Decimal(0)),
                               unknown_components=sum(p.unknown_components for p in periods)))
    return SpendReport(
        generated_at=generated_at, start=start, end=end, granularity=granularity, teams=tuple(teams),
        known=sum((t.known for t in teams), Decimal(0)), unknown_components=sum(t.unknown_components for t in teams),
        estimated_times=estimated,
    )


def _line_order(item: tuple[tuple[str, str, int | None, str | None, int | None, ComponentName, Decimal | None], int]
                ) -> tuple[str, str, int, str, Decimal]:
    (stack, name, iid, _gpu, _n, component, rate), _micros = item
    return stack, name, iid or 0, component, rate or Decimal(0)


def chargeback_report(timelines: Iterable[InstanceTimeline], *, month: str, now: datetime,
                      generated_at: datetime, teams: Iterable[str] = (),
                      budgets: Mapping[str, Decimal | None] | None = None) -> ChargebackReport:
    """One invoice per team (every team in `teams` gets one, even if it spent nothing), one line per instance
    and rate, and the daily totals the chart draws (against each team's daily budget from `budgets`)."""
    start, end = month_range(month)
    lines: dict[str, dict[tuple[str, str, int | None, str | None, int | None, ComponentName, Decimal | None], int]]
    lines = defaultdict(lambda: defaultdict(int))
    daily: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    daily_unknown: dict[tuple[str, str], int] = defaultdict(int)
    for s in slices(timelines, start=start, end=end, now=now, granularity="day"):
        lines[s.team][(s.stack, s.name, s.instance_id, s.gpu_name, s.num_gpus, s.component, s.hourly)] += s.micros
        amount = cost(s.hourly, s.micros)
        if amount is None:
            daily_unknown[(s.team, s.period)] += 1
        else:
            daily[(s.team, s.period)] += amount
    invoices = []
    for team in sorted(set(lines) | set(teams)):
        rows = [
            InvoiceLine(stack=stack, instance=name, instance_id=iid, gpu_name=gpu, num_gpus=n, component=comp,
                        hours=hours(micros), hourly=rate, cost=cost(rate, micros))
            for (stack, name, iid, gpu, n, comp, rate), micros in sorted(lines.get(team, {}).items(), key=_line_order)
        ]
        invoices.append(Invoice(team=team, month=month, lines=tuple(rows),
                                total=sum((r.cost for r in rows if r.cost is not None), Decimal(0)),
                                unknown_lines=sum(r.cost is None for r in rows),
                                daily_budget=(budgets or {}).get(team)))
    days = []
    cursor = start
    while cursor < end:
        days.append(cursor.date())
        cursor += timedelta(days=1)
    team_names = [i.team for i in invoices]
    return ChargebackReport(
        generated_at=generated_at, month=month, invoices=tuple(invoices),
        daily=tuple(DailySpend(team=t, day=d, cost=daily.get((t, d.isoformat()), Decimal(0)),
                               unknown=daily_unknown.get((t, d.isoformat()), 0))
                    for t in team_names for d in days),
    )

