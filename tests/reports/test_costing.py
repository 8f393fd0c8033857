"""Timelines -> spend and invoices: period splits, clipping, exact Decimal sums, unknown prices."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from reports.costing import chargeback_report, month_range, slices, spend_report
from reports.models import InstanceTimeline, Segment
from tests.reports.conftest import utc


def timeline(*segments: tuple[datetime, datetime | None, str, str | None], team: str = "t", iid: int = 1
             ) -> InstanceTimeline:
    return InstanceTimeline(
        project="p", stack="s", team=team, name=f"i{iid}", instance_id=iid, gpu_name="RTX 4090", num_gpus=1,
        segments=tuple(Segment(start=a, end=b, component=c, hourly=None if r is None else Decimal(r),
                               start_basis="vast", end_basis="vast" if b else None) for a, b, c, r in segments),
    )


def test_a_segment_is_split_at_midnight_utc_and_clipped_to_the_range() -> None:
    tl = timeline((utc(2026, 11, 1, 20), utc(2026, 11, 3, 6), "running", "0.5"))
    parts = list(slices([tl], start=utc(2026, 11, 2), end=utc(2026, 12, 1), now=utc(2026, 12, 5), granularity="day"))
    assert [(p.period, p.micros // 3_600_000_000) for p in parts] == [("2026-11-02", 24), ("2026-11-03", 6)]


def test_an_open_segment_runs_to_now_or_the_end_of_the_range() -> None:
    tl = timeline((utc(2026, 11, 30, 12), None, "running", "1"))
    in_month = spend_report([tl], start=utc(2026, 11, 1), end=utc(2026, 12, 1), now=utc(2026, 12, 9),
                            granularity="month", generated_at=utc(2026, 12, 9))
    assert in_month.known == Decimal(12)
    until_now = spend_report([tl], start=utc(2026, 11, 1), end=utc(2026, 12, 1), now=utc(2026, 11, 30, 18),
                             granularity="month", generated_at=utc(2026, 12, 9))
    assert until_now.known == Decimal(6)


def test_sums_are_exact_decimals_not_float_drift() -> None:
    # 0.36 $/h for 1 second, 35,400 times: exactly $3.54; a float sum of the seconds' costs would not be.
    start = utc(2026, 11, 1)
    second = timedelta(seconds=1)
    segs = [(at, at + second, "running", "0.36")
            for at in (start.replace(hour=h, minute=m, second=s) for h in range(10) for m in range(60)
                       for s in range(59))]
    tl = timeline(*segs)
    report = spend_report([tl], start=start, end=utc(2026, 12, 1), now=utc(2026, 12, 1), granularity="month",
                          generated_at=start)
    assert len(segs) == 35_400
    assert report.known == Decimal("3.54")
    assert sum([0.36 / 3600] * len(segs)) != 3.54


def test_unknown_price_is_counted_not_summed_as_zero() -> None:
    tl = timeline((utc(2026, 11, 1), utc(2026, 11, 2), "running", None),
                  (utc(2026, 11, 2), utc(2026, 11, 3), "storage", "0.01"))
    report = spend_report([tl], start=utc(2026, 11, 1), end=utc(2026, 12, 1), now=utc(2026, 12, 1),
                          granularity="month", generated_at=utc(2026, 12, 1))
    (team,) = report.teams
    (period,) = team.periods
    (inst,) = period.instances
    assert inst.cost is None
    assert period.known == Decimal("0.24") and period.unknown_components == 1
    assert report.unknown_components == 1


def test_chargeback_lines_per_instance_and_rate_with_daily_totals() -> None:
    a = timeline((utc(2026, 11, 1, 10), utc(2026, 11, 2, 10), "running", "2"),
                 (utc(2026, 11, 2, 10), utc(2026, 11, 3, 10), "storage", "0.05"), iid=1)
    b = timeline((utc(2026, 10, 31, 0), utc(2026, 11, 1, 2), "running", "1"), team="u", iid=2)
    report = chargeback_report([a, b], month="2026-11", now=utc(2026, 12, 2), generated_at=utc(2026, 12, 2),
                               teams=["t", "u", "idle"])
    assert [i.team for i in report.invoices] == ["idle", "t", "u"]
    idle, t, u = report.invoices
    assert idle.lines == () and idle.total == 0
    assert [(ln.component, ln.hours, ln.cost) for ln in t.lines] == [
        ("running", Decimal(24), Decimal(48)), ("storage", Decimal(24), Decimal("1.2"))]
    assert t.total == Decimal("49.2")
    assert u.total == Decimal(2)  # October is not November's business
    daily = {(d.team, d.day.day): d.cost for d in report.daily}
    assert daily[("t", 1)] == Decimal(28) and daily[("t", 2)] == Decimal(20) + Decimal("0.7")
    assert daily[("t", 3)] == Decimal("0.5") and daily[("t", 30)] == 0
    assert sum(d.cost for d in report.daily if d.team == "t") == t.total
    assert len([d for d in report.daily if d.team == "idle"]) == 30


def test_month_range_rejects_nonsense() -> None:
    assert month_range("2026-12") == (utc(2026, 12, 1), utc(2027, 1, 1))
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_range("2026-13")
