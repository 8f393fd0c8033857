"""The provider's interruptible instances against the emulator over real HTTP (no engine): quoted at their bid,
rented at it, read as outbid (not running, not failed, not to be replaced) while competing demand holds the
machine, a `max_bid` change made in place, and an instance whose bid loses at once rented all the same."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from emulator import EmulatorServer
from emulator.bodies import DemandBody
from emulator.testing import EmulatorAccount
from fleet.instance import InstanceOutputs, InstanceSpec
from providers.vast_instance import VastInstanceProvider
from vastclient import OfferQuery, VastClient


def props(**changes: Any) -> dict[str, Any]:
    spec = InstanceSpec(team="data-science", gpu_name="RTX_3090", image="jupyter/pytorch-notebook:latest",
                        disk_gb=32, max_dph=0.30, interruptible=True, max_bid=0.1, label="data-science/batch-0")
    return {**spec.model_dump(), "ownership_tag": "vg:data-science/batch-0", "__provider": "x", **changes}


def test_an_interruptible_quote_is_the_bid_plus_storage_on_a_machine_the_bid_wins(
        provider: tuple[VastInstanceProvider, EmulatorAccount], emulator: EmulatorServer) -> None:
    p, account = provider
    quote = p.check({}, props()).inputs["quote"]
    assert quote["bid"] == 0.1
    offer = emulator.market.state.offers[quote["offer_id"]]
    storage = float(offer.storage_cost) * 32 / 720
    assert quote["dph_total"] == pytest.approx(0.1 + storage, abs=1e-6) and quote["dph_total"] <= 0.30
    assert offer.min_bid <= Decimal("0.1")  # a machine this bid wins now
    with VastClient(api_key=account.api_key, base_url=emulator.url) as vast:
        on_demand = vast.search_offers(OfferQuery(gpu_names="RTX 3090", disk_gb=32, order=(("dph_total", "asc"),)))
    assert quote["dph_total"] < on_demand[0].dph_total  # cheaper than the cheapest on-demand rent


@pytest.mark.parametrize(("changes", "needle"), [
    ({"max_bid": 0.01}, "the lowest winning bid now is $"),
    ({"max_bid": None}, "an interruptible instance needs max_bid"),
    ({"interruptible": False}, "max_bid applies to interruptible instances only"),
])
def test_bid_check_failures_name_max_bid(provider: tuple[VastInstanceProvider, EmulatorAccount],
                                         changes: dict[str, Any], needle: str) -> None:
    p, _ = provider
    result = p.check({}, props(**changes))
    assert [f.property for f in result.failures] == ["max_bid"], result.failures
    assert needle in result.failures[0].reason


def test_rented_at_the_bid_outbid_read_as_outbid_resumed_and_rebid_in_place(
        provider: tuple[VastInstanceProvider, EmulatorAccount], emulator: EmulatorServer) -> None:
    p, _ = provider
    checked = p.check({}, props()).inputs
    created = p.create(checked)
    outs = created.outs
    assert outs is not None and InstanceOutputs.model_validate(outs).model_dump(mode="json") == outs
    assert (outs["status"], outs["bid"], outs["outbid"], outs["state"]) == ("running", 0.1, False, "running")
    inst = emulator.market.state.instances[int(created.id)]
    assert inst.is_bid and float(inst.dph_base) == 0.1

    demand = emulator.market.add_demand(DemandBody(instance_id=inst.id, kind="bid", price=0.12))
    read = p.read(created.id, outs).outs
    assert read is not None
    # Outbid: not running, and not failed or stopped either: the state stays `running`, so no `up` starts or
    # replaces it (`diff` sees nothing to change).
    assert (read["status"], read["outbid"], read["state"]) == ("stopped", True, "running")
    diff = p.diff(created.id, read, {**checked, "quote": read["quote"]})
    assert not diff.changes and not diff.replaces

    rebid = p.update(created.id, read, {**checked, "max_bid": 0.13})  # outbids the outbidder, in place
    assert rebid.outs is not None
    assert (rebid.outs["bid"], rebid.outs["outbid"], rebid.outs["status"]) == (0.13, False, "running")
    assert rebid.outs["quote"]["bid"] == 0.13
    assert p.diff(created.id, read, {**checked, "max_bid": 0.13}).replaces == []

    emulator.market.end_demand(demand.id)
    p.delete(created.id, rebid.outs)
    assert emulator.market.state.instances[inst.id].destroyed_at is not None


def test_a_create_whose_bid_loses_at_once_keeps_the_instance_outbid(
        provider: tuple[VastInstanceProvider, EmulatorAccount], emulator: EmulatorServer) -> None:
    p, _ = provider
    checked = p.check({}, props()).inputs
    # Someone outbids on the quoted machine between preview and up: Vast rents it paused (success false with
    # the contract); the create keeps it (it waits in line at its bid) instead of timing out or renting twice.
    emulator.market.add_demand(DemandBody(offer_id=checked["quote"]["offer_id"], kind="bid", price=0.2))
    created = p.create(checked)
    assert created.outs is not None
    assert (created.outs["status"], created.outs["outbid"]) == ("stopped", True)
    mine = [i for i in emulator.market.state.instances.values() if i.destroyed_at is None]
    assert [i.id for i in mine] == [int(created.id)]
