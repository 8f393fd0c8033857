"""Billing on the virtual clock: exact per-day charges, storage vs GPU, and reconciliation to the balance."""

from __future__ import annotations

from decimal import Decimal

import pytest

from emulator.bodies import ClockBody, ManageInstanceBody
from emulator.errors import InvalidArgs
from emulator.models import ChargePage, MarketBackend
from emulator.query import parse_charges
from emulator.views import charge_row
from tests.emulator.helpers import DAY, HOUR, T0, account, make_market, offer, rent


def charges(market: MarketBackend, acct_id: int, *, start: float = T0, end: float = T0 + 30 * DAY,
            limit: str | None = None, latest_first: str | None = None, after_token: str | None = None) -> ChargePage:
    acct = market.state.accounts[acct_id]
    params = {"select_filters": f'{{"day": {{"gte": {start}, "lte": {end}}}}}'}
    for name, value in (("limit", limit), ("latest_first", latest_first), ("after_token", after_token)):
        if value is not None:
            params[name] = value
    query = parse_charges(params)
    return market.charges(acct, query)


def amounts(page: ChargePage) -> list[tuple[str, dict[str, float]]]:
    out = []
    for line in page.lines:
        row = charge_row(line)
        out.append((row["source"], {item["type"]: item["amount"] for item in row["items"]}))
    return out


def test_one_hour_running_bills_dph_base_plus_storage() -> None:
    market = make_market()
    acct = account(market)
    # storage: 0.10 $/GB/month x 72 GB / 720 = 0.01 $/h
    inst = rent(market, acct, offer(market, dph_base="0.4000", storage_cost="0.100"), disk=72)
    assert inst.dph_total == Decimal("0.41")
    market.clock.advance(HOUR)
    page = charges(market, acct.id)
    [row] = [charge_row(line) for line in page.lines]
    assert row["source"] == f"instance-{inst.id}" and row["type"] == "instance"
    items = {i["type"]: i["amount"] for i in row["items"]}
    assert items == {"gpu": 0.4, "disk": 0.01, "bwu": 0.0, "bwd": 0.0}
    assert row["amount"] == 0.41
    assert (row["start"], row["end"]) == (T0, T0 + HOUR)
    assert market.balance(acct.id) == Decimal("99.59")


def test_stopped_keeps_paying_storage_only() -> None:
    market = make_market()
    acct = account(market)
    inst = rent(market, acct, offer(market, dph_base="1.0000", storage_cost="0.200"), disk=36)  # 0.01 $/h disk
    market.clock.advance(2 * HOUR)
    market.manage_instance(acct, inst.id, ManageInstanceBody(state="stopped"))
    market.clock.advance(3 * HOUR)
    assert amounts(charges(market, acct.id)) == [(f"instance-{inst.id}", {
        "gpu": 2.0, "disk": 0.05, "bwu": 0.0, "bwd": 0.0})]


def test_gpu_is_billed_from_running_and_storage_from_creation() -> None:
    market = make_market(provision_delay=600)  # 10 minutes of created/loading
    acct = account(market)
    inst = rent(market, acct, offer(market, dph_base="0.6000", storage_cost="0.100"), disk=72)  # 0.01 $/h
    market.clock.advance(HOUR)
    [(_, items)] = amounts(charges(market, acct.id))
    assert items["gpu"] == 0.5  # 50 minutes of 0.60
    assert items["disk"] == 0.01
    assert inst.id


def test_charges_split_at_utc_midnight() -> None:
    market = make_market(start=T0 + 23 * HOUR)
    acct = account(market)
    inst = rent(market, acct, offer(market, dph_base="0.2400", storage_cost="0.000"))
    market.clock.advance(2 * HOUR)
    page = charges(market, acct.id)
    rows = [charge_row(line) for line in page.lines]
    assert [r["day"] for r in rows] == [int(T0), int(T0 + DAY)]
    assert [r["amount"] for r in rows] == [0.24, 0.24]
    assert rows[0]["end"] == rows[1]["start"] == T0 + DAY
    assert rows[0]["metadata"]["label"] is None and rows[0]["source"] == f"instance-{inst.id}"


def test_day_bounds_are_whole_days_inclusive() -> None:
    market = make_market(start=T0 + 23 * HOUR)
    acct = account(market)
    rent(market, acct, offer(market))
    market.clock.advance(2 * HOUR)
    assert charges(market, acct.id, start=T0, end=T0).total == 1
    assert charges(market, acct.id, start=T0 + DAY + 5, end=T0 + DAY + 10).total == 1  # the day it falls in
    assert charges(market, acct.id, start=T0 + 2 * DAY, end=T0 + 9 * DAY).total == 0


def test_rounding_is_per_row_so_polling_changes_nothing() -> None:
    def run(poll_every: float) -> tuple[list[tuple[str, dict[str, float]]], Decimal]:
        market = make_market()
        acct = account(market, key="k")
        rent(market, acct, offer(market, dph_base="0.3333", storage_cost="0.117"), disk=33)
        elapsed = 0.0
        while elapsed < 2 * DAY:
            market.clock.advance(poll_every)
            market.balance(acct.id)
            elapsed += poll_every
        return amounts(charges(market, acct.id)), market.balance(acct.id)

    assert run(8 * 60.0) == run(2 * DAY)  # 8 minutes divides two days


def test_balance_reconciles_exactly_with_the_rows() -> None:
    market = make_market(provision_delay=90)
    acct = account(market, balance="250")
    a = rent(market, acct, offer(market, dph_base="0.3717", storage_cost="0.153"), disk=41)
    market.clock.advance(5 * HOUR + 17)
    b = rent(market, acct, offer(market, dph_base="2.4999", storage_cost="0.281", num_gpus=2), disk=100)
    market.clock.advance(DAY)
    market.manage_instance(acct, a.id, ManageInstanceBody(state="stopped"))
    market.clock.advance(7 * HOUR + 3)
    market.destroy_instance(acct, b.id)
    market.clock.advance(DAY)
    page = charges(market, acct.id, limit="100")
    total = sum((Decimal(str(charge_row(line)["amount"])) for line in page.lines), Decimal(0))
    assert page.total == 5  # a: 3 days, b: 2 days
    assert Decimal(250) - total == market.balance(acct.id)
    for line in page.lines:
        row = charge_row(line)
        assert Decimal(str(row["amount"])) == sum(Decimal(str(i["amount"])) for i in row["items"])


def test_bids_are_billed_at_the_bid() -> None:
    market = make_market()
    acct = account(market)
    inst = rent(market, acct, offer(market, dph_base="0.8000", storage_cost="0.000"), price=0.5)
    market.clock.advance(HOUR)
    assert amounts(charges(market, acct.id)) == [(f"instance-{inst.id}", {
        "gpu": 0.5, "disk": 0.0, "bwu": 0.0, "bwd": 0.0})]


def test_pagination_latest_first_and_type_filter() -> None:
    market = make_market()
    acct = account(market)
    for _ in range(3):
        rent(market, acct, offer(market))
    market.clock.advance(3 * DAY)  # 3 instances x 3 days = 9 rows
    seen: list[tuple[int, int]] = []
    token = None
    while True:
        page = charges(market, acct.id, limit="4", after_token=token)
        assert page.total == 9 and len(page.lines) <= 4
        seen += [(line.day.day, line.day.instance_id) for line in page.lines]
        token = page.next_token
        if token is None:
            break
    assert seen == sorted(seen) and len(set(seen)) == 9
    latest = charges(market, acct.id, latest_first="true")
    keys = [(line.day.day, line.day.instance_id) for line in latest.lines]
    assert keys == sorted(keys, reverse=True)
    query = parse_charges({"select_filters": f'{{"day": {{"gte": {T0}, "lte": {T0 + 9 * DAY}}}, '
                                             '"type": {"in": ["volume"]}}'})
    assert market.charges(acct, query).total == 0


@pytest.mark.parametrize("params", [
    {},
    {"select_filters": "{}"},
    {"select_filters": '{"day": {"gte": 1}}'},
    {"select_filters": '{"day": {"gte": "soon", "lte": 2}}'},
    {"select_filters": "not json"},
    {"select_filters": '{"day": {"gte": 1, "lte": 2}}', "limit": "0"},
    {"select_filters": '{"day": {"gte": 1, "lte": 2}}', "latest_first": "perhaps"},
    {"select_filters": '{"day": {"gte": 1, "lte": 2}}', "after_token": "garbage!"},
])
def test_charges_need_day_bounds_and_sane_params(params: dict[str, str]) -> None:
    with pytest.raises(InvalidArgs):
        parse_charges(params)


def test_clock_cannot_rewind_under_live_instances() -> None:
    market = make_market()
    acct = account(market)
    inst = rent(market, acct, offer(market))
    market.clock.advance(HOUR)
    with pytest.raises(InvalidArgs, match="cannot go back"):
        market.update_clock(ClockBody(set=T0))
    market.destroy_instance(acct, inst.id)
    market.update_clock(ClockBody(set=T0))  # nothing live: allowed
    assert market.clock.now() == T0
