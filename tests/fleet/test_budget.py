"""The budget math (fleet/budget.py): windows in a team's time zone, a window's share of Vast's per-UTC-day charges
(exact for UTC, an upper bound otherwise), accrual since the last charge, the storage committed to the window's
end, and the prepaid credit plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.budget import (
    ChargeRow,
    LiveRate,
    UnknownSpendError,
    UnknownTimezoneError,
    WindowSpend,
    credit_plan,
    live_rate,
    parse_window_key,
    row_share,
    window,
    window_spend,
)

NOV5 = datetime(2026, 11, 5, 15, 30, tzinfo=UTC)


def test_windows_are_days_and_calendar_months_in_the_teams_time_zone() -> None:
    day = window("day", NOV5)
    assert (day.start, day.end, day.key, day.end_text) == (
        datetime(2026, 11, 5, tzinfo=UTC), datetime(2026, 11, 6, tzinfo=UTC), "day:2026-11-05@UTC", "24:00 UTC")
    month = window("month", NOV5, "Europe/Berlin")
    assert month.start == datetime(2026, 10, 31, 23, tzinfo=UTC) and month.end == datetime(2026, 11, 30, 23, tzinfo=UTC)
    assert month.key == "month:2026-11@Europe/Berlin"
    # 25 October 2026 is 25 hours long in Berlin (summer time ends): the window says so.
    fall = window("day", datetime(2026, 10, 25, 12, tzinfo=UTC), "Europe/Berlin")
    assert fall.end - fall.start == timedelta(hours=25)
    assert window("day", datetime(2026, 12, 31, 23, tzinfo=UTC), "Asia/Tokyo").label == "2027-01-01"
    assert day.hours_left(NOV5) == Decimal("8.5") and day.hours_left(day.end + timedelta(hours=1)) == 0
    assert parse_window_key(month.key) == ("month", "2026-11", "Europe/Berlin") and parse_window_key("x") is None
    with pytest.raises(UnknownTimezoneError, match="not an IANA time zone"):
        window("day", NOV5, "Mars/Olympus")


def row(day: datetime, *, gpu: str = "4.8", rate: str = "0.2", disk: str = "0.24", hours: float = 24) -> ChargeRow:
    start = day.timestamp()
    return ChargeRow(instance_id=7, amount=Decimal(gpu) + Decimal(disk), start=start, end=start + hours * 3600,
                     gpu=Decimal(gpu), gpu_rate=Decimal(rate), disk=Decimal(disk))


def test_a_utc_window_sums_whole_rows_and_another_zone_apportions_them_as_an_upper_bound() -> None:
    nov5 = datetime(2026, 11, 5, tzinfo=UTC)
    utc = window("day", NOV5)
    assert row_share(row(nov5), utc.start.timestamp(), utc.end.timestamp()).amount == Decimal("5.04")
    assert row_share(row(nov5 - timedelta(days=1)), utc.start.timestamp(), utc.end.timestamp()).amount == 0
    berlin = window("day", NOV5, "Europe/Berlin")  # 23:00 UTC Nov 4 .. 23:00 UTC Nov 5: 23 hours of the row
    share = row_share(row(nov5), berlin.start.timestamp(), berlin.end.timestamp())
    assert not share.exact
    assert share.amount == Decimal("0.23") + Decimal("4.6")  # storage pro rata; GPU at its rate over 23 h
    idle_most_of_the_day = row(nov5, gpu="0.4")  # 2 GPU hours: at most all of them fell in the window
    assert row_share(idle_most_of_the_day, berlin.start.timestamp(), berlin.end.timestamp()).amount == \
        Decimal("0.23") + Decimal("0.4")


@given(st.floats(0, 23.9), st.floats(0.1, 24), st.integers(0, 23))
def test_apportioned_shares_never_undercount_a_row(offset_h: float, hours: float, cut_h: int) -> None:
    start = datetime(2026, 11, 5, tzinfo=UTC) + timedelta(hours=offset_h)
    charge = row(start, hours=min(hours, 24 - offset_h), gpu="2", disk="0.1")
    cut = (datetime(2026, 11, 5, tzinfo=UTC) + timedelta(hours=cut_h)).timestamp()
    # Float timestamps may end the row a hair past the second window (offset + hours = 24 h): the windows summed
    # are all those that cover it.
    before, after, later = (row_share(charge, cut + k * 86400, cut + (k + 1) * 86400) for k in (-1, 0, 1))
    assert 0 <= before.amount <= charge.amount and 0 <= after.amount <= charge.amount
    assert before.amount + after.amount + later.amount >= charge.amount - Decimal("1e-20")


def test_spend_adds_what_live_instances_billed_since_their_last_charge_and_commits_their_storage() -> None:
    day = window("day", NOV5)
    rows = [ChargeRow(instance_id=1, amount=Decimal("3"), start=day.start.timestamp(),
                      end=(NOV5 - timedelta(hours=1)).timestamp())]
    live = [live_rate(instance_id=1, running=True, dph_total=0.5, storage_cost=0.1, disk_gb=72),
            live_rate(instance_id=2, running=False, dph_total=9, storage_cost=0.1, disk_gb=72,
                      since=(NOV5 - timedelta(hours=2)).timestamp())]
    spend = window_spend(day, NOV5, rows, live)
    assert spend.charged == 3
    assert spend.accrued == Decimal("0.5") + Decimal("0.01") * 2  # an hour running since its charge; 2 h of disk
    assert spend.storage_to_end == Decimal("0.01") * Decimal("8.5") * 2
    assert spend.committed == spend.spent + spend.storage_to_end
    with pytest.raises(UnknownSpendError, match="instance 3: Vast gave no price"):
        window_spend(day, NOV5, rows, [LiveRate(instance_id=3, running=True, hourly=None, storage=Decimal(0),
                                                since=day.start.timestamp())])


def spend(spent: str, reserve: str) -> WindowSpend:
    win = window("month", NOV5)
    return WindowSpend(window=win, at=NOV5, charged=Decimal(spent), accrued=Decimal(0),
                       storage_to_end=Decimal(reserve), exact=True)


def test_the_credit_plan_keeps_the_balance_at_most_at_what_is_left_less_the_disks_reserve() -> None:
    plan = credit_plan(budget=Decimal(100), spend=spend("30.004", "5.333"), balance=Decimal(0), reclaim=True)
    assert plan.target == Decimal("64.663") and plan.top_up == Decimal("64.66") and plan.reclaim == 0
    plan = credit_plan(budget=Decimal(100), spend=spend("30", "5"), balance=Decimal("70.001"), reclaim=True)
    assert plan.reclaim == Decimal("5.01") and plan.top_up == 0  # rounded up: never above the target
    assert credit_plan(budget=Decimal(100), spend=spend("30", "5"), balance=Decimal("70"), reclaim=False).reclaim == 0
    waits = credit_plan(budget=Decimal(100), spend=spend("30", "5"), balance=Decimal("64.6"), reclaim=True,
                        min_top_up=Decimal("0.5"))
    assert waits.top_up == 0 and waits.reclaim == 0  # 40 cents below its target: not worth a transfer yet
    spent_out = credit_plan(budget=Decimal(100), spend=spend("99", "5"), balance=Decimal("0.004"), reclaim=True)
    assert spent_out.target == 0 and spent_out.reclaim == 0  # nothing whole-cent to take back
