"""Instance lifecycle on the virtual clock: provisioning, stop/start, destroy, faults, races, credit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from emulator.bodies import BalanceBody, FaultBody, ForceStateBody, ManageInstanceBody, RaceBody
from emulator.errors import InvalidArgs, InvalidPrice, LabelTooLong, MissingBilling, NoSuchAsk, NoSuchInstance
from emulator.views import instance_row
from tests.emulator.helpers import DAY, HOUR, account, make_market, offer, rent, status


def test_provisioning_goes_created_loading_running_on_the_clock() -> None:
    market = make_market(provision_delay=40)
    acct = account(market)
    inst = rent(market, acct, offer(market))
    assert status(market, acct, inst.id) == "created"
    market.clock.advance(9.9)
    assert status(market, acct, inst.id) == "created"
    market.clock.advance(0.1)  # D/4
    assert status(market, acct, inst.id) == "loading"
    market.clock.advance(29.9)
    assert status(market, acct, inst.id) == "loading"
    market.clock.advance(0.1)  # D
    assert status(market, acct, inst.id) == "running"


def test_zero_delay_runs_at_once_and_rows_carry_the_state_fields() -> None:
    market = make_market(provision_delay=0)
    acct = account(market)
    inst = rent(market, acct, offer(market), label="team-a", env={"TZ": "UTC", "-p 8080:8080": "1"})
    shown, now = market.show_instance(acct, inst.id)
    assert shown is not None
    row = instance_row(shown, now)
    assert (row["actual_status"], row["intended_status"], row["cur_state"], row["next_state"]) == (
        "running", "running", "running", "running")
    assert row["status_msg"].startswith("success")
    assert row["extra_env"] == [["TZ", "UTC"], ["-p 8080:8080", "1"]]
    assert isinstance(row["start_date"], float) and row["label"] == "team-a"


def test_stop_is_immediate_and_start_reloads() -> None:
    market = make_market(provision_delay=20)
    acct = account(market)
    inst = rent(market, acct, offer(market))
    market.clock.advance(20)
    market.manage_instance(acct, inst.id, ManageInstanceBody(state="stopped"))
    shown, now = market.show_instance(acct, inst.id)
    assert shown is not None
    assert (shown.actual_status, shown.intended_status) == ("stopped", "stopped")
    assert instance_row(shown, now)["cur_state"] == "stopped"
    market.manage_instance(acct, inst.id, ManageInstanceBody(state="running"))
    assert status(market, acct, inst.id) == "loading"
    market.clock.advance(20)
    assert status(market, acct, inst.id) == "running"
    # starting a running instance is a no-op, as is relabelling it
    market.manage_instance(acct, inst.id, ManageInstanceBody(state="running", label="x"))
    assert status(market, acct, inst.id) == "running"


def test_destroy_frees_the_offer_and_a_second_destroy_is_404() -> None:
    market = make_market()
    acct = account(market)
    offer_id = offer(market)
    inst = rent(market, acct, offer_id)
    with pytest.raises(NoSuchAsk, match="no_such_ask"):
        rent(market, acct, offer_id)
    market.destroy_instance(acct, inst.id)
    assert market.show_instance(acct, inst.id)[0] is None
    with pytest.raises(NoSuchInstance):
        market.destroy_instance(acct, inst.id)
    again = rent(market, acct, offer_id)  # back on the market
    assert again.id != inst.id


def test_unknown_offer_is_no_such_ask_with_vasts_message() -> None:
    market = make_market()
    acct = account(market)
    with pytest.raises(NoSuchAsk) as err:
        rent(market, acct, 123)
    assert err.value.status == 404
    assert err.value.body() == {"success": False, "error": "invalid_args",
                                "msg": "error 404/3603: no_such_ask  Instance type by id 123 is not available."}


@pytest.mark.parametrize(("body", "error", "fragment"), [
    ({"image": "x" * 1025}, InvalidArgs, "image"),
    ({"image": None}, InvalidArgs, "image is required"),
    ({"label": "l" * 257}, InvalidArgs, "label"),
    ({"disk": 7.9}, InvalidArgs, "at least 8"),
    ({"disk": 501}, InvalidArgs, "500 GB"),
    ({"price": 0.0001}, InvalidPrice, "price"),
    ({"price": 200}, InvalidPrice, "price"),
    ({"price": 0.01}, InvalidPrice, "min_bid"),
])
def test_create_validation(body: dict[str, object], error: type[Exception], fragment: str) -> None:
    market = make_market()
    acct = account(market)
    offer_id = offer(market, disk_space=500)
    with pytest.raises(error, match=fragment):
        rent(market, acct, offer_id, **body)
    assert offer_id not in market.state.taken  # a refused rent takes nothing off the market


def test_limits_at_their_edges_are_accepted() -> None:
    market = make_market()
    acct = account(market)
    inst = rent(market, acct, offer(market, disk_space=500), image="i" * 1024, label="l" * 256, disk=8)
    assert inst.disk == Decimal(8)
    bid = rent(market, acct, offer(market, dph_base="0.4000"), price=0.25)  # min_bid is half the price
    assert bid.is_bid and bid.dph_base == Decimal("0.25")


def test_relabel_limit_uses_vasts_code() -> None:
    market = make_market()
    acct = account(market)
    inst = rent(market, acct, offer(market))
    with pytest.raises(LabelTooLong) as err:
        market.manage_instance(acct, inst.id, ManageInstanceBody(label="x" * 257))
    assert err.value.body()["error"] == "label_too_long"
    market.manage_instance(acct, inst.id, ManageInstanceBody(label=None))
    assert market.show_instance(acct, inst.id)[0].label is None  # type: ignore[union-attr]


def test_a_key_never_sees_or_touches_another_accounts_instances() -> None:
    market = make_market()
    alice, bob = account(market, key="alice-key"), account(market, key="bob-key")
    inst = rent(market, alice, offer(market))
    assert market.show_instance(bob, inst.id)[0] is None
    assert market.all_instances(bob)[0] == []
    with pytest.raises(NoSuchInstance):
        market.manage_instance(bob, inst.id, ManageInstanceBody(state="stopped"))
    with pytest.raises(NoSuchInstance):
        market.destroy_instance(bob, inst.id)
    assert status(market, alice, inst.id) == "running"


def test_provision_fault_stuck_loading_stays_forever() -> None:
    market = make_market(provision_delay=30)
    acct = account(market)
    market.faults.add(FaultBody(operation="provision", outcome="stuck_loading", count=1))
    stuck = rent(market, acct, offer(market))
    fine = rent(market, acct, offer(market))
    market.clock.advance(DAY)
    assert status(market, acct, stuck.id) == "loading"
    assert status(market, acct, fine.id) == "running"


def test_provision_fault_exited_ends_exited_and_restarts_exit_again() -> None:
    market = make_market(provision_delay=10)
    acct = account(market)
    market.faults.add(FaultBody(operation="provision", outcome="exited", status_msg="boom"))
    inst = rent(market, acct, offer(market))
    market.clock.advance(10)
    shown = market.show_instance(acct, inst.id)[0]
    assert shown is not None and (shown.actual_status, shown.status_msg) == ("exited", "boom")
    market.manage_instance(acct, inst.id, ManageInstanceBody(state="running"))
    market.clock.advance(10)
    assert status(market, acct, inst.id) == "exited"


def test_forced_states() -> None:
    market = make_market(provision_delay=10)
    acct = account(market)
    inst = rent(market, acct, offer(market))
    market.force_state(inst.id, ForceStateBody(actual_status="loading", stuck=True))
    market.clock.advance(HOUR)
    assert status(market, acct, inst.id) == "loading"
    market.force_state(inst.id, ForceStateBody(actual_status="exited", status_msg="OOM"))
    assert status(market, acct, inst.id) == "exited"
    market.force_state(inst.id, ForceStateBody(actual_status="running"))
    assert status(market, acct, inst.id) == "running"
    market.force_state(inst.id, ForceStateBody(actual_status="offline"))
    market.clock.advance(HOUR)
    assert status(market, acct, inst.id) == "offline"  # terminal: never recovers by itself


def test_race_reject_takes_the_offer_before_the_rent_lands() -> None:
    market = make_market()
    acct = account(market)
    first, second = offer(market), offer(market)
    market.add_race(RaceBody(offer_id=second))
    market.add_race(RaceBody(offer_id=None))
    with pytest.raises(NoSuchAsk):
        rent(market, acct, second)  # the named race
    with pytest.raises(NoSuchAsk):
        rent(market, acct, first)  # the "next rent" race
    assert market.races() == []
    assert {first, second} <= set(market.state.taken)  # gone to someone else for good
    third = offer(market)
    assert rent(market, acct, third).actual_status == "running"


def test_race_late_accepts_then_dies_in_startup_and_the_machine_stays_taken() -> None:
    market = make_market(provision_delay=10)
    acct = account(market)
    offer_id = offer(market)
    market.add_race(RaceBody(offer_id=offer_id, mode="late"))
    inst = rent(market, acct, offer_id)
    market.clock.advance(10)
    shown = market.show_instance(acct, inst.id)[0]
    assert shown is not None and shown.actual_status == "exited"
    assert "another client" in shown.status_msg
    market.destroy_instance(acct, inst.id)
    with pytest.raises(NoSuchAsk):
        rent(market, acct, offer_id)


def test_running_out_of_credit_stops_instances_at_the_exact_instant() -> None:
    market = make_market()
    acct = account(market, balance="1.00")
    # $0.50/h GPU + 0.1 $/GB/month x 36 GB / 720 = $0.005/h storage -> $0.505/h
    inst = rent(market, acct, offer(market, dph_base="0.5000", storage_cost="0.100"), disk=36)
    market.clock.advance(10 * HOUR)
    shown = market.show_instance(acct, inst.id)[0]
    assert shown is not None and shown.actual_status == "stopped" and "credit" in shown.status_msg
    # it stopped at 1.00 / 0.505 h; since then storage alone: 10 h total of storage
    crossing = Decimal("1.00") / Decimal("0.505")
    expected = Decimal("1.00") - (Decimal("0.5") * crossing + Decimal("0.005") * 10)
    assert abs(market.balance(acct.id) - expected) < Decimal("0.000003")
    with pytest.raises(MissingBilling):
        market.manage_instance(acct, inst.id, ManageInstanceBody(state="running"))
    with pytest.raises(MissingBilling):
        rent(market, acct, offer(market))
    market.set_balance(acct.id, BalanceBody(add=Decimal(5)))
    market.manage_instance(acct, inst.id, ManageInstanceBody(state="running"))
    assert status(market, acct, inst.id) == "running"
