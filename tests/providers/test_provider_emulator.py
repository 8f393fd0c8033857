"""The dynamic provider's methods called directly against the emulator over real HTTP (no engine).

The engine end-to-end tests (tests/e2e) cover the same paths through Pulumi; these pin down each method's
contract precisely and quickly: check's validation and quote, create/read/update/delete.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from emulator import EmulatorServer
from emulator.bodies import FaultBody, ForceStateBody
from emulator.testing import EmulatorAccount
from fleet.instance import InstanceOutputs, InstanceSpec
from providers import provisioning
from providers.host import ProviderError
from providers.vast_instance import VastInstanceProvider


def props(**changes: Any) -> dict[str, Any]:
    spec = InstanceSpec(team="data-science", gpu_name="RTX_3090", image="jupyter/pytorch-notebook:latest",
                        disk_gb=32, max_dph=0.30, label="data-science/notebook-0")
    return {**spec.model_dump(), "ownership_tag": "vg:data-science/notebook-0", "__provider": "x", **changes}


def test_check_adds_a_live_quote_within_the_cap(provider: tuple[VastInstanceProvider, EmulatorAccount]) -> None:
    p, _ = provider
    result = p.check({}, props())
    assert result.failures == []
    quote = result.inputs["quote"]
    assert quote["gpu_name"] == "RTX 3090"
    assert 0 < quote["dph_total"] <= 0.30
    assert quote["matched"] >= 1


@pytest.mark.parametrize(
    ("changes", "field", "needle"),
    [
        ({"gpu_name": "RTX_9999"}, "gpu_name", "the marketplace knows: "),
        ({"disk_gb": 4}, "disk_gb", "greater than or equal to 8"),
        ({"max_dph": 0}, "max_dph", "greater than 0"),
        ({"max_dph": 0.01}, "max_dph", "the cheapest matching offer now is $"),
        ({"num_gpus": 0}, "num_gpus", "greater than or equal to 1"),
        ({"state": "paused"}, "state", "'running' or 'stopped'"),
    ],
)
def test_check_failures_name_the_field_and_the_fix(provider: tuple[VastInstanceProvider, EmulatorAccount],
                                                  changes: dict[str, Any], field: str, needle: str) -> None:
    p, _ = provider
    result = p.check({}, props(**changes))
    assert [f.property for f in result.failures] == [field]
    assert needle in result.failures[0].reason


def test_unchanged_instance_keeps_its_quote(provider: tuple[VastInstanceProvider, EmulatorAccount]) -> None:
    p, _ = provider
    old = props(quote={"offer_id": 1, "gpu_name": "RTX 3090", "dph_total": 0.2, "storage_cost": 0.1,
                       "matched": 3, "quoted_at": "2026-01-01T00:00:00+00:00"})
    result = p.check(old, props())
    assert result.inputs["quote"] == old["quote"]


def test_create_read_update_delete(provider: tuple[VastInstanceProvider, EmulatorAccount],
                                   emulator: EmulatorServer) -> None:
    p, account = provider
    checked = p.check({}, props()).inputs
    created = p.create(checked)
    outs = created.outs
    assert outs is not None
    assert outs["status"] == "running"
    # Every result is the contract, exactly: the pack's stack rules and the reports read these keys.
    assert InstanceOutputs.model_validate(outs).model_dump(mode="json") == outs
    assert str(provisioning.tag_of(outs["vast_label"])).startswith("vg:data-science/notebook-0#")
    instance_id = int(created.id)

    read = p.read(created.id, outs)
    assert read.id == created.id
    assert read.outs is not None
    assert read.outs["state"] == "running"
    assert InstanceOutputs.model_validate(read.outs).model_dump(mode="json") == read.outs

    stopped = p.update(created.id, outs, {**outs, "state": "stopped", "label": "parked"})
    assert stopped.outs is not None
    assert stopped.outs["status"] == "stopped"
    assert InstanceOutputs.model_validate(stopped.outs).model_dump(mode="json") == stopped.outs
    assert stopped.outs["vast_label"].startswith("parked [vg:data-science/notebook-0#")

    assert p.diff(created.id, outs, {**outs, "state": "stopped"}).replaces == []
    assert p.diff(created.id, outs, {**outs, "gpu_name": "RTX_4090"}).replaces == ["gpu_name"]
    assert p.diff(created.id, outs, {**outs, "__provider": "changed", "quote": None}).changes is False

    p.delete(created.id, outs)
    assert p.read(created.id, outs).id == ""
    p.delete(created.id, outs)  # already gone: not an error
    owner = next(a for a in emulator.market.state.accounts.values() if a.id == account.id)
    assert instance_id not in {i.id for i in emulator.market.all_instances(owner)[0]}


def test_provider_pickles_without_key_or_client(provider: tuple[VastInstanceProvider, EmulatorAccount]) -> None:
    import dill

    p, account = provider
    blob = dill.dumps(p)
    assert account.api_key.encode() not in blob
    restored = dill.loads(blob)  # noqa: S301 -- our own bytes, as the engine does with __provider
    assert restored._settings is None


def test_clock_outputs_follow_vasts_clock(provider: tuple[VastInstanceProvider, EmulatorAccount],
                                          emulator: EmulatorServer) -> None:
    """The reports' contract: Vast-clock times of the rent, of each state change, and of the last call."""
    p, _ = provider
    t0 = emulator.market.clock.freeze()
    outs = p.create(p.check({}, props()).inputs).outs
    assert outs is not None
    assert (outs["vast_created_at"], outs["vast_state_since"], outs["vast_seen_at"]) == (t0, t0, t0)
    assert abs(outs["local_seen_at"] - time.time()) < 60
    iid = str(outs["instance_id"])

    emulator.market.clock.advance(3600.25)
    read = p.read(iid, outs).outs
    assert read is not None
    assert (read["vast_created_at"], read["vast_state_since"], read["vast_seen_at"]) == (t0, t0, t0 + 3600.25)

    emulator.market.clock.advance(1800)
    stopped = p.update(iid, outs, {**outs, "state": "stopped"}).outs
    assert stopped is not None
    assert (stopped["vast_created_at"], stopped["vast_state_since"]) == (t0, t0 + 5400.25)
    emulator.market.clock.advance(60)
    relabelled = p.update(iid, stopped, {**stopped, "label": "parked"}).outs  # no state change: kept
    assert relabelled is not None
    assert (relabelled["vast_state_since"], relabelled["vast_seen_at"]) == (t0 + 5400.25, t0 + 5460.25)
    p.delete(iid, relabelled)


def test_an_instance_that_died_after_running_reads_as_not_running_so_up_starts_it(
        provider: tuple[VastInstanceProvider, EmulatorAccount], emulator: EmulatorServer) -> None:
    """A host failure or a crashed container (`exited`) after the instance ran: refresh must record that it is not
    running, or the stack keeps saying `running` and no `up` ever starts it again."""
    p, _ = provider
    outs = p.create(p.check({}, props()).inputs).outs
    assert outs is not None
    iid = str(outs["instance_id"])
    emulator.market.force_state(int(iid), ForceStateBody(actual_status="exited"))

    read = p.read(iid, outs).outs
    assert read is not None
    assert (read["status"], read["state"]) == ("exited", "stopped")
    assert p.diff(iid, read, props()).changes is True  # the declaration says running: `up` updates it
    started = p.update(iid, read, {**outs, "state": "running"}).outs
    assert started is not None
    assert started["status"] == "running"


def test_refresh_drops_an_instance_only_on_vasts_own_word_that_it_is_gone(
        provider: tuple[VastInstanceProvider, EmulatorAccount], emulator: EmulatorServer) -> None:
    """A listing that misses the instance (Vast's listings lag and page) is checked with Vast's own `show`; a
    gateway's 404 fails the refresh instead of dropping a paid instance from the state; only Vast saying it
    does not exist (and the listing agreeing) means gone."""
    p, _ = provider
    outs = p.create(p.check({}, props()).inputs).outs
    assert outs is not None
    iid = str(outs["instance_id"])
    emulator.market.faults.add(FaultBody(operation="list", status=200, count=1,
                                         body={"success": True, "instances": [], "next_token": None}))
    read = p.read(iid, outs)
    assert read.id == iid and read.outs is not None and read.outs["status"] == "running"

    for operation in ("list", "show"):
        emulator.market.faults.add(FaultBody(operation=operation, status=404, count=1, body="<html>Not Found</html>"))
    emulator.market.faults.add(FaultBody(operation="list", status=200, count=1,
                                         body={"success": True, "instances": [], "next_token": None}))
    with pytest.raises(ProviderError, match=r"HTTP 404: <html>Not Found</html> \(GET /api/v1/instances/\); the state "
                                            "is unchanged"):
        p.read(iid, outs)  # the listing's 404, past the client (404 is not retried)
    with pytest.raises(ProviderError, match=r"404.*GET /api/v0/instances/"):
        p.read(iid, outs)  # the listing misses it, and show answers a gateway's 404
    assert p.read(iid, outs).id == iid

    p.delete(iid, outs)
    assert p.read(iid, outs).id == ""
