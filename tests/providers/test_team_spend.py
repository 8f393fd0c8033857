"""The `vastai:TeamSpend` provider called directly against the emulator (no engine): its check reads the team's
spend (one listing, one charges query) into the inputs, an unreadable one is unknown with the fix, never $0, its
diff reports every new reading, and its other methods only record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from emulator import EmulatorServer
from emulator.bodies import ClockBody
from emulator.testing import EmulatorAccount, make_team, make_team_key
from fleet.spend import SpendReading, TeamSpendInputs
from providers import market
from providers.settings import ProviderSettings
from providers.team_spend import TeamSpendProvider
from vastclient import OfferQuery, VastClient

NOON = datetime(2026, 11, 5, 12, tzinfo=UTC)


def provider_for(server: EmulatorServer, key: str) -> TeamSpendProvider:
    """A provider as in a new preview's process (whose market session takes its own listing)."""
    market._SESSIONS.clear()
    provider = TeamSpendProvider()
    provider._settings = ProviderSettings(api_key=key, base_url=server.url)
    return provider


def props(**changes: Any) -> dict[str, Any]:
    return {**TeamSpendInputs(team="vision", stack="vision").model_dump(mode="json"), "__provider": "x", **changes}


@pytest.fixture
def frozen(emulator: EmulatorServer) -> EmulatorServer:
    emulator.market.update_clock(ClockBody(set=NOON.timestamp(), freeze=True))
    return emulator


def test_check_reads_the_spend_so_far_in_each_window_with_one_listing_and_one_charges_query(
        frozen: EmulatorServer, emulator_account: Callable[..., EmulatorAccount]) -> None:
    account = emulator_account(balance=100)
    with VastClient(api_key=account.api_key, base_url=frozen.url) as vast:
        offer = vast.search_offers(OfferQuery(gpu_names="RTX 4090", disk_gb=16, limit=1))[0]
        instance = vast.create_instance(offer.id, image="pytorch/pytorch", disk_gb=16,
                                        label="box [vg:vision/box-0#0123abcd]")
    frozen.market.update_clock(ClockBody(advance=7200))
    frozen.market.requests.clear()
    result = provider_for(frozen, account.api_key).check({}, props())
    calls = frozen.market.requests.counts()
    assert result.failures == []
    reading = SpendReading.model_validate(result.inputs["reading"])
    assert reading.status == "known" and reading.read_at == pytest.approx(NOON.timestamp() + 7200, abs=0.01)
    day, month = reading.of_kind("day"), reading.of_kind("month")
    assert day is not None and month is not None
    with VastClient(api_key=account.api_key, base_url=frozen.url) as vast:
        charged = sum((c.amount for c in vast.charges(NOON.date(), NOON.date())), Decimal(0))
    assert day.charged == charged == month.charged and charged > 0
    assert abs(day.accrued) < Decimal("0.000001")  # the emulator's charges run to the moment they are read
    assert day.storage_to_end > 0 and day.exact
    (live,) = reading.instances
    assert (live.instance_id, live.status, live.stack) == (instance, "running", "vision")
    assert calls.get("list") == 1 and calls.get("charges") == 1 and reading.charge_pages == 1


def test_a_key_without_billing_read_gives_an_unknown_reading_with_the_fix(
        frozen: EmulatorServer, emulator_account: Callable[..., EmulatorAccount]) -> None:
    owner = emulator_account(balance=100)
    team = make_team(frozen, owner, name="vision")
    preview = make_team_key(frozen, team, permissions={"api": {"instance_read": {}, "misc": {}, "user_read": {}}})
    result = provider_for(frozen, preview).check({}, props())
    assert result.failures == []  # never an error: the pack fails closed on it, with this reason
    reading = SpendReading.model_validate(result.inputs["reading"])
    assert reading.status == "unknown" and reading.windows == ()
    assert reading.reason is not None and "billing_read" in reading.reason


def test_no_key_is_an_unknown_reading_too(frozen: EmulatorServer) -> None:
    provider = TeamSpendProvider()
    provider._settings = ProviderSettings(api_key=None, base_url=frozen.url)
    reading = SpendReading.model_validate(provider.check({}, props()).inputs["reading"])
    assert reading.status == "unknown" and "no Vast.ai API key" in (reading.reason or "")


@pytest.mark.parametrize(("changes", "field"), [({"timezone": "Mars/Olympus"}, "timezone"),
                                                ({"windows": ["week"]}, "windows.0"), ({"team": ""}, "team")])
def test_bad_inputs_fail_check_naming_the_field(frozen: EmulatorServer,
                                                emulator_account: Callable[..., EmulatorAccount],
                                                changes: dict[str, Any], field: str) -> None:
    result = provider_for(frozen, emulator_account().api_key).check({}, props(**changes))
    assert field in [f.property for f in result.failures]


def test_diff_reports_a_new_reading_and_nothing_else_is_ever_replaced(frozen: EmulatorServer,
                                                                      emulator_account: Callable[..., EmulatorAccount]
                                                                      ) -> None:
    account = emulator_account()
    provider = provider_for(frozen, account.api_key)
    first = provider.check({}, props()).inputs
    assert not provider.diff("id", first, dict(first)).changes
    # A minute later nothing has changed but the clock: the spend grew as the burn said, the reading stands.
    frozen.market.update_clock(ClockBody(advance=60))
    assert not provider.diff("id", first, provider_for(frozen, account.api_key).check(first, props()).inputs).changes
    # An instance rented since: the reading moved, and must be judged.
    with VastClient(api_key=account.api_key, base_url=frozen.url) as vast:
        offer = vast.search_offers(OfferQuery(gpu_names="RTX 4090", disk_gb=16, limit=1))[0]
        vast.create_instance(offer.id, image="pytorch/pytorch", disk_gb=16, label="outside")
    second = provider_for(frozen, account.api_key).check(first, props()).inputs
    diff = provider.diff("id", first, second)
    assert diff.changes and diff.replaces == []
    frozen.market.update_clock(ClockBody(advance=901))  # older than 15 minutes: taken again whatever it says
    third = provider_for(frozen, account.api_key).check(second, props()).inputs
    assert provider.diff("id", second, third).changes
    assert provider.diff("id", second, {**second, "timezone": "Europe/Berlin"}).changes
    # A deploy's create or update runs after its instances' and records the spend as it then is.
    created = provider.create(third)
    outs = created.outs or {}
    assert created.id == "vision/vision" and outs["reading"]["read_at"] == third["reading"]["read_at"]
    assert not provider.diff("id", outs, third).changes  # so the next preview of the same stack shows no change
    assert (provider.update("id", second, third).outs or {})["reading"]["status"] == "known"
    refreshed = provider.read("id", outs).outs or {}
    assert refreshed["reading"]["read_at"] == third["reading"]["read_at"]  # a fresh reading (the clock is frozen)
    provider.delete("id", outs)  # nothing on Vast to release: no call, no error
