"""Interruptible instances on the virtual clock: Vast's priority (on demand over bids, the highest bid first),
outbid and resumed at the exact instants competing demand arrives and leaves, bid changes, and billing at the bid
while running and storage only while outbid."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from emulator import EmulatorServer
from emulator.bodies import ChangeBidBody, DemandBody, ManageInstanceBody
from emulator.errors import Conflict, InvalidArgs, NoSuchAsk, NoSuchInstance
from emulator.models import MarketBackend
from emulator.state import MarketState
from emulator.testing import Control, http, make_account
from emulator.views import instance_row, offer_row
from tests.emulator.helpers import DAY, HOUR, T0, account, make_market, offer, rent, search, status
from tests.emulator.test_billing import amounts, charges


def _row(market: MarketBackend, acct_id: int, instance_id: int) -> dict[str, object]:
    inst, now = market.show_instance(market.state.accounts[acct_id], instance_id)
    assert inst is not None
    return instance_row(inst, now)


def test_a_higher_bid_outbids_at_its_start_and_the_instance_resumes_when_it_leaves() -> None:
    market = make_market()
    acct = account(market)
    oid = offer(market, dph_base="0.8000", storage_cost="0.072")  # min_bid 0.40; 10 GB: storage 0.001 $/h
    inst = rent(market, acct, oid, price=0.5, disk=10)
    assert status(market, acct, inst.id) == "running"
    market.add_demand(DemandBody(offer_id=oid, kind="bid", price=0.6, start=T0 + 2 * HOUR, end=T0 + 5 * HOUR))
    market.clock.advance(3 * HOUR)
    row = _row(market, acct.id, inst.id)
    # Outbid shows the way Vast shows it: current, intended and next state all stopped.
    assert (row["actual_status"], row["cur_state"], row["intended_status"], row["next_state"]) == (
        "stopped", "stopped", "stopped", "stopped")
    assert "Outbid" in str(row["status_msg"]) and row["is_bid"] is True and row["dph_base"] == 0.5
    assert market.state.instances[inst.id].outbid_since == T0 + 2 * HOUR
    market.clock.advance(3 * HOUR)  # the demand left at 5 h: running again by itself
    assert status(market, acct, inst.id) == "running"
    assert market.state.instances[inst.id].outbid_since is None
    # 6 h alive: 3 h running at the bid (0-2 h, 5-6 h), storage all 6 h; nothing at the on-demand price.
    assert amounts(charges(market, acct.id)) == [(f"instance-{inst.id}", {
        "gpu": 1.5, "disk": 0.006, "bwu": 0.0, "bwd": 0.0})]
    assert market.balance(acct.id) == Decimal("100") - Decimal("1.506")


def test_on_demand_outranks_any_bid_and_a_bid_held_machine_stays_on_the_on_demand_market() -> None:
    market = make_market()
    acct, other = account(market), account(market)
    oid = offer(market, dph_base="0.8000")
    bidder = rent(market, acct, oid, price=5.0)
    # A machine held only by a bid is listed on demand (an on-demand rent outranks it), and a bid search
    # prices it at what would win it now: a step above the bid.
    (listed,) = [q for q in search(market, other, {"limit": 1000}) if q.offer.id == oid]
    assert listed.dph_base == Decimal("0.8000") and not listed.is_bid
    (bid_quote,) = [q for q in search(market, other, {"type": "bid", "limit": 1000}) if q.offer.id == oid]
    assert bid_quote.dph_base == Decimal("5.001") and offer_row(bid_quote, T0)["min_bid"] == 5.001
    market.clock.advance(HOUR)
    on_demand = rent(market, other, oid)  # another account rents it on demand: the bid loses, however high
    assert status(market, acct, bidder.id) == "stopped" and status(market, other, on_demand.id) == "running"
    assert not [q for q in search(market, other, {"limit": 1000}) if q.offer.id == oid]  # held on demand now
    with pytest.raises(NoSuchAsk):
        rent(market, acct, oid, price=9.0)  # not on the market while rented on demand
    market.clock.advance(HOUR)
    market.destroy_instance(other, on_demand.id)
    assert status(market, acct, bidder.id) == "running"  # resumes the moment the machine is free
    # Outside on-demand demand outranks it the same way, and a machine we rent on demand refuses it.
    demand = market.add_demand(DemandBody(offer_id=oid, kind="on-demand"))
    assert status(market, acct, bidder.id) == "stopped"
    market.end_demand(demand.id)
    assert status(market, acct, bidder.id) == "running"
    mine = rent(market, acct, offer(market))
    with pytest.raises(Conflict, match="never interrupted"):
        market.add_demand(DemandBody(instance_id=mine.id, kind="on-demand"))


def test_the_highest_bid_wins_equal_bids_in_the_order_placed_and_a_bid_below_the_floor_never_runs() -> None:
    market = make_market()
    acct = account(market)
    oid = offer(market, dph_base="1.0000")  # floor 0.50
    first = rent(market, acct, oid, price=0.6)
    second = rent(market, acct, oid, price=0.6)
    assert (status(market, acct, first.id), status(market, acct, second.id)) == ("running", "stopped")
    higher = rent(market, acct, oid, price=0.7)
    assert [status(market, acct, i.id) for i in (first, second, higher)] == ["stopped", "stopped", "running"]
    market.change_bid(acct, higher.id, ChangeBidBody(price=0.4))  # accepted, but under the host's floor
    assert [status(market, acct, i.id) for i in (first, second, higher)] == ["running", "stopped", "stopped"]
    market.manage_instance(acct, first.id, ManageInstanceBody(state="stopped"))  # leaves the contest
    assert [status(market, acct, i.id) for i in (first, second, higher)] == ["stopped", "running", "stopped"]
    market.manage_instance(acct, first.id, ManageInstanceBody(state="running"))  # rejoins: equal bid, later now?
    assert status(market, acct, first.id) == "running"  # placed first: equal bids keep the order they were rented
    assert status(market, acct, second.id) == "stopped"


def test_a_bid_change_bills_from_its_instant_and_can_win_the_machine_back() -> None:
    market = make_market()
    acct = account(market)
    oid = offer(market, dph_base="0.8000", storage_cost="0.000")
    inst = rent(market, acct, oid, price=0.5)
    market.add_demand(DemandBody(offer_id=oid, kind="bid", price=0.55, start=T0 + HOUR))
    market.clock.advance(2 * HOUR)
    assert status(market, acct, inst.id) == "stopped"
    market.change_bid(acct, inst.id, ChangeBidBody(price=0.6))  # outbids the outbidder: runs again at once
    assert status(market, acct, inst.id) == "running"
    market.clock.advance(HOUR)
    # 1 h at 0.5, 1 h outbid, 1 h at 0.6: the time before the change keeps the old bid.
    ((_, items),) = amounts(charges(market, acct.id))
    assert items["gpu"] == pytest.approx(1.1)
    shown, _ = market.show_instance(acct, inst.id)
    assert shown is not None and shown.dph_base == Decimal("0.6")
    market.change_bid(acct, inst.id, ChangeBidBody(price=None))  # no price: the winning bid, a step above 0.55
    assert market.state.instances[inst.id].dph_base == Decimal("0.551")


@pytest.mark.parametrize(("price", "message"), [
    (0.0005, r"Please set a bid price >= 0\.001\."),
    (33.0, "32 \\$/h per GPU"),
])
def test_a_bid_change_out_of_range_is_refused(price: float, message: str) -> None:
    market = make_market()
    acct = account(market)
    inst = rent(market, acct, offer(market), price=0.3)
    with pytest.raises(InvalidArgs, match=message):
        market.change_bid(acct, inst.id, ChangeBidBody(price=price))


def test_a_bid_change_needs_an_interruptible_instance_of_ones_own() -> None:
    market = make_market()
    acct, other = account(market), account(market)
    on_demand = rent(market, acct, offer(market))
    with pytest.raises(InvalidArgs, match="on-demand contract"):
        market.change_bid(acct, on_demand.id, ChangeBidBody(price=0.3))
    bid = rent(market, acct, offer(market), price=0.3)
    with pytest.raises(NoSuchInstance):
        market.change_bid(other, bid.id, ChangeBidBody(price=0.4))


def test_a_losing_bid_rents_a_paused_instance_answered_success_false_with_its_contract() -> None:
    with EmulatorServer(port=0, seed=3, provision_delay=0) as srv:
        acct = make_account(srv, balance=20)
        control = Control(srv.url)
        oid = control.call("POST", "/offers", {"gpu_name": "RTX 4090", "dph_base": "0.4000",
                                               "storage_cost": "0.100"})["offer"]["id"]
        demand = control.demand(offer_id=oid, kind="bid", price=1.0)
        created = http(srv.url, "PUT", f"/api/v0/asks/{oid}/", key=acct.api_key,
                       body={"client_id": "me", "image": "pytorch/pytorch", "disk": 10, "price": 0.3}).json()
        assert created["success"] is False and isinstance(created["new_contract"], int)
        row = http(srv.url, "GET", f"/api/v0/instances/{created['new_contract']}/", key=acct.api_key).json()
        assert row["instances"]["actual_status"] == "stopped" and row["instances"]["is_bid"] is True
        listing = control.call("GET", "/demand")["demand"]
        assert [(d["offer_id"], d["kind"], d["active"]) for d in listing] == [(oid, "bid", True)]
        control.end_demand(demand["id"])  # the other bidder leaves: ours runs
        row = http(srv.url, "GET", f"/api/v0/instances/{created['new_contract']}/", key=acct.api_key).json()
        assert row["instances"]["actual_status"] == "running"
        bad = http(srv.url, "POST", "/_emulator/demand", body={"offer_id": oid, "kind": "bid"})
        assert bad.status == 400 and "a bid needs a price" in bad.json()["msg"]
        assert http(srv.url, "DELETE", "/_emulator/demand/999").status == 404


def test_competing_demand_is_persisted_and_scheduled_demand_acts_after_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    market = make_market()
    acct = account(market)
    oid = offer(market)
    inst = rent(market, acct, oid, price=0.3)
    market.add_demand(DemandBody(offer_id=oid, kind="bid", price=1.0, start=T0 + DAY))
    state_file.write_text(market.snapshot_json())
    resumed = MarketBackend(MarketState.model_validate_json(state_file.read_text()))
    resumed.clock.advance(DAY + HOUR)
    assert status(resumed, acct, inst.id) == "stopped"
    assert resumed.state.instances[inst.id].outbid_since == T0 + DAY
