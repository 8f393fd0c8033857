"""The client over real HTTP against the local Vast.ai emulator: every operation, every error class,
retries under injected faults and rate limits, the rent-whose-answer-was-lost path, and pagination.

The emulator's clock is frozen and the client's waits advance it (`sleep` below), so a rate-limit wait or
a backoff costs no real time while the emulator's token buckets still refill exactly as Vast's would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from emulator import EmulatorServer
from emulator.testing import Control, EmulatorAccount
from fleet import gpus
from vastclient import (
    ApiError,
    AuthError,
    CreateOutcomeUnknownError,
    NotFoundError,
    Offer,
    OfferQuery,
    OfferUnavailableError,
    QuotaExceededError,
    RateLimitedError,
    TransportError,
    UnexpectedResponseError,
    VastClient,
    VastError,
)

IMAGE = "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime"


@dataclass
class Harness:
    emulator: EmulatorServer
    control: Control
    account: EmulatorAccount
    sleeps: list[float] = field(default_factory=list)
    clients: list[VastClient] = field(default_factory=list)

    def client(self, *, api_key: str | None = None, **options: Any) -> VastClient:
        def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            self.control.advance(seconds)

        options.setdefault("clock", self.emulator.market.clock.now)
        options.setdefault("sleep", sleep)
        client = VastClient(api_key=api_key or self.account.api_key, base_url=self.emulator.url, **options)
        self.clients.append(client)
        return client

    def calls(self, operation: str) -> list[Any]:
        return [r for r in self.emulator.market.requests.records(operation) if r.account_id == self.account.id]

    def fault(self, **rule: Any) -> None:
        self.control.fault(**rule)

    def cheap_offers(self, vast: VastClient, n: int = 1, **query: Any) -> list[Offer]:
        query.setdefault("order", (("dph_total", "asc"),))
        offers = vast.search_offers(OfferQuery(limit=max(n, 10), **query))
        assert len(offers) >= n
        return offers[:n]


@pytest.fixture
def harness(emulator: EmulatorServer, emulator_account: Callable[..., EmulatorAccount]) -> Iterator[Harness]:
    control = Control(emulator.url)
    control.freeze()
    h = Harness(emulator=emulator, control=control, account=emulator_account(balance=10_000))
    yield h
    for client in h.clients:
        client.close()


@pytest.fixture
def vast(harness: Harness) -> VastClient:
    return harness.client()


def rent(vast: VastClient, offer: Offer, label: str = "job [vg:dev/a]") -> int:
    return vast.create_instance(offer.id, image=IMAGE, disk_gb=16, label=label)


# -- every operation -----------------------------------------------------------------------------------------


def test_gpu_names_and_current_user(harness: Harness, vast: VastClient) -> None:
    names = vast.gpu_names()
    assert "RTX 4090" in names and names == sorted(names)
    user = vast.current_user()
    assert user.id == harness.account.id and user.balance is not None and user.balance > 0


def test_search_honours_every_filter(vast: VastClient) -> None:
    known = vast.gpu_names()
    query = OfferQuery(
        gpu_names=gpus.resolve("A100", known),
        num_gpus=1,
        max_dph=3.0,
        min_reliability=0.9,
        geolocation=["US", "SE", "NL", "DE", "CA"],
        disk_gb=50,
        order=(("dph_total", "asc"),),
        limit=20,
    )
    offers = vast.search_offers(query)
    assert offers, "the seeded catalogue has A100s"
    for offer in offers:
        assert offer.gpu_name in ("A100 PCIE", "A100 SXM4")
        assert offer.num_gpus == 1 and offer.dph_total <= 3.0
        assert offer.reliability is not None and offer.reliability >= 0.9
        assert offer.disk_space is not None and offer.disk_space >= 50
        assert query.matches(offer)
    prices = [o.dph_total for o in offers]
    assert prices == sorted(prices)


def test_rent_manage_and_destroy(harness: Harness, vast: VastClient) -> None:
    (offer,) = harness.cheap_offers(vast, gpu_names="RTX_4090")
    instance_id = rent(vast, offer, "job [vg:dev/a]")
    inst = vast.get_instance(instance_id)
    assert inst is not None and inst.phase == "running" and inst.label == "job [vg:dev/a]"
    assert inst.machine_id == offer.machine_id and inst.disk_space == 16

    vast.stop(instance_id)
    stopped = vast.get_instance(instance_id)
    assert stopped is not None and stopped.phase == "stopped"
    assert [i.id for i in vast.list_instances(statuses=["stopped"])] == [instance_id]
    vast.start(instance_id)
    vast.set_label(instance_id, "renamed [vg:dev/a]")
    assert [i.id for i in vast.list_instances(labels=["renamed [vg:dev/a]"])] == [instance_id]
    assert vast.list_instances(labels=["job [vg:dev/a]"]) == []

    vast.destroy(instance_id)
    assert vast.get_instance(instance_id) is None
    vast.destroy(instance_id)  # already gone: fine
    with pytest.raises(NotFoundError):
        vast.start(instance_id)


def test_interruptible_rent_sends_the_bid(harness: Harness, vast: VastClient) -> None:
    (offer,) = harness.cheap_offers(vast, offer_type="bid")
    bid = round(max(offer.min_bid or 0.01, 0.01) * 1.5, 4)
    instance_id = vast.create_instance(offer.id, image=IMAGE, disk_gb=10, label="bid [vg:dev/b]", price=bid)
    inst = vast.get_instance(instance_id)
    assert inst is not None and inst.is_bid


def test_list_instances_pages_through_more_than_25(harness: Harness, vast: VastClient) -> None:
    offers = harness.cheap_offers(vast, 27)
    ids = [rent(vast, offer, f"bulk-{n} [vg:dev/p]") for n, offer in enumerate(offers)]
    harness.emulator.market.requests.clear()
    listed = vast.list_instances()
    assert sorted(i.id for i in listed) == sorted(ids)
    assert len(harness.calls("list")) == 2, "25 on the first page, 2 on the second"


def test_charges_page_through_a_date_range(harness: Harness, vast: VastClient) -> None:
    offers = harness.cheap_offers(vast, 26)
    for n, offer in enumerate(offers):
        rent(vast, offer, f"billed-{n} [vg:dev/c]")
    start = datetime.fromtimestamp(harness.emulator.market.clock.now(), UTC).date()
    harness.control.advance(3 * 86400 + 3600)  # four UTC days touched: 26 x 4 charges > one page of 100
    harness.emulator.market.requests.clear()
    charges = vast.charges(start, start + timedelta(days=3))
    assert len(charges) == 26 * 4
    assert len(harness.calls("charges")) == 2
    assert {c.instance_id for c in charges} == {i.id for i in vast.list_instances()}
    for charge in charges:
        assert charge.amount > 0
        assert sum((i.amount or 0) for i in charge.items) == pytest.approx(charge.amount, abs=Decimal("0.00001"))
        assert {i.type for i in charge.items} >= {"gpu", "disk"}
    assert vast.charges(start, start, types=["volume"]) == []


# -- every error class -------------------------------------------------------------------------------------------


def test_wrong_key_is_an_auth_error(harness: Harness) -> None:
    with pytest.raises(AuthError) as caught:
        harness.client(api_key="emu-not-a-key").current_user()
    assert (caught.value.status, caught.value.code) == (401, "auth_error")


def test_offer_taken_first(harness: Harness, vast: VastClient) -> None:
    (offer,) = harness.cheap_offers(vast)
    rent(vast, offer, "first [vg:dev/x]")
    with pytest.raises(OfferUnavailableError) as caught:
        rent(vast, offer, "second [vg:dev/y]")
    assert caught.value.status == 404 and "no_such_ask" in caught.value.message
    assert len(harness.calls("create")) == 2


def test_offer_lost_to_a_race(harness: Harness, vast: VastClient) -> None:
    (offer,) = harness.cheap_offers(vast)
    harness.control.call("POST", "/races", {"offer_id": offer.id, "mode": "reject"})
    with pytest.raises(OfferUnavailableError):
        rent(vast, offer)
    assert vast.list_instances() == []


def test_no_credit_is_an_api_error(harness: Harness, emulator_account: Callable[..., EmulatorAccount]) -> None:
    broke = harness.client(api_key=emulator_account(balance=0).api_key)
    (offer,) = harness.cheap_offers(broke)
    with pytest.raises(ApiError) as caught:
        rent(broke, offer)
    assert (caught.value.status, caught.value.code) == (400, "missing_billing")


def test_search_quota_is_not_retried(harness: Harness, vast: VastClient) -> None:
    harness.fault(operation="search", status=429, count=1,
                  body={"success": False, "error": "search_quota_exceeded", "msg": "daily search quota"})  # fmt: skip
    with pytest.raises(QuotaExceededError):
        vast.search_offers(OfferQuery())
    assert len(harness.calls("search")) == 1 and harness.sleeps == []


def test_server_error_is_not_retried(harness: Harness, vast: VastClient) -> None:
    harness.fault(operation="user", status=500, count=1)
    with pytest.raises(ApiError) as caught:
        vast.current_user()
    assert (caught.value.status, caught.value.code) == (500, "injected_fault")
    assert len(harness.calls("user")) == 1


def test_a_page_that_is_not_json(harness: Harness, vast: VastClient) -> None:
    harness.fault(operation="user", status=200, body="<html>captive portal</html>", count=1)
    with pytest.raises(UnexpectedResponseError):
        vast.current_user()


def test_dropped_connections_become_a_transport_error(harness: Harness) -> None:
    harness.fault(operation="user", status=0)
    with pytest.raises(TransportError) as caught:
        harness.client(max_attempts=3).current_user()
    assert caught.value.attempts == 3
    assert len(harness.calls("user")) == 3


def test_rate_limited_to_the_end(harness: Harness) -> None:
    harness.control.config(rate_limits=True)
    vast = harness.client(max_attempts=3, sleep=lambda s: harness.sleeps.append(s))  # waits that refill nothing
    vast.list_instances()
    with pytest.raises(RateLimitedError) as caught:
        vast.list_instances()
    assert caught.value.retry_after == pytest.approx(1.0)
    assert "threshold=1.0" in caught.value.message
    # Two retry waits of the server's Retry-After; the pacer (which learnt "threshold=1.0" from the first 429)
    # adds its own spacing waits, which here refill nothing either since these sleeps do not advance the clock.
    assert harness.sleeps.count(1.0) == 2
    assert [r.status for r in harness.calls("list")] == [200, 429, 429, 429]


# -- retries under faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504, 0])
def test_transient_faults_are_retried(harness: Harness, vast: VastClient, status: int) -> None:
    harness.fault(operation="list", status=status, count=2)
    assert vast.list_instances() == []
    assert len(harness.calls("list")) == 3
    assert len(harness.sleeps) == 2


def test_retry_after_from_a_fault_is_honoured(harness: Harness, vast: VastClient) -> None:
    harness.fault(operation="show", status=429, count=1, body="slow down", headers={"Retry-After": "7"})
    assert vast.get_instance(123) is None
    assert harness.sleeps == [7.0]


def test_rate_limits_are_waited_out(harness: Harness, vast: VastClient) -> None:
    harness.control.config(rate_limits=True)
    (offer,) = harness.cheap_offers(vast)
    instance_id = rent(vast, offer)
    for _ in range(3):  # manage: 1 per second, so each call after the first waits for its token
        vast.stop(instance_id)
        vast.start(instance_id)
    assert sum(harness.sleeps) >= 5
    # Each wait is the token's refill (1 s) or the pacer's spacing of the learnt threshold (1 s plus margin).
    assert all(0 < s <= 1.1 for s in harness.sleeps)
    inst = vast.get_instance(instance_id)
    assert inst is not None and inst.phase == "running"


def test_slow_answers_time_out_and_are_retried(harness: Harness) -> None:
    harness.fault(operation="show", status=200, latency_ms=600, count=1, body={"instances": None})
    vast = harness.client(timeout=0.2, deadline=30)
    assert vast.get_instance(1) is None
    # the emulator logs the abandoned request only when its delayed answer is written, ~0.4 s from now
    give_up = time.monotonic() + 5
    while len(harness.calls("show")) < 2 and time.monotonic() < give_up:
        time.sleep(0.02)
    assert len(harness.calls("show")) == 2


# -- a rent whose answer is lost ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 504, 0])
def test_rent_done_but_answer_lost_is_found_by_label(harness: Harness, vast: VastClient, status: int) -> None:
    (offer,) = harness.cheap_offers(vast)
    harness.fault(operation="create", status=status, phase="after", count=1)
    instance_id = rent(vast, offer, "lost [vg:dev/l]")
    listed = vast.list_instances()
    assert [i.id for i in listed] == [instance_id], "exactly one instance, not a second paid one"
    assert listed[0].label == "lost [vg:dev/l]"
    assert len(harness.calls("create")) == 1


@pytest.mark.parametrize("status", [502, 503, 0])
def test_rent_not_done_is_retried_after_checking(harness: Harness, vast: VastClient, status: int) -> None:
    (offer,) = harness.cheap_offers(vast)
    harness.fault(operation="create", status=status, phase="before", count=1)
    instance_id = rent(vast, offer, "retried [vg:dev/r]")
    assert [i.id for i in vast.list_instances()] == [instance_id]
    assert len(harness.calls("create")) == 2
    assert len(harness.calls("list")) == 2  # the check, then the assertion's own listing


def test_rent_outcome_unknown_when_the_check_fails_too(harness: Harness, vast: VastClient) -> None:
    (offer,) = harness.cheap_offers(vast)
    harness.fault(operation="create", status=0, phase="after", count=1)
    harness.fault(operation="list", status=401, count=1, body={"error": "auth_error", "msg": "Invalid user key"})
    with pytest.raises(CreateOutcomeUnknownError) as caught:
        rent(vast, offer, "unknown [vg:dev/u]")
    assert caught.value.label == "unknown [vg:dev/u]" and caught.value.offer_id == offer.id
    # ... and indeed it exists: the caller must look for it before renting again
    assert [i.label for i in vast.list_instances()] == ["unknown [vg:dev/u]"]


# -- secrecy over real HTTP ----------------------------------------------------------------------------------------


def test_no_key_in_logs_or_errors(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    key = harness.account.api_key
    harness.fault(operation="list", status=503, count=1)
    harness.fault(operation="user", status=0)
    vast = harness.client(max_attempts=2)
    failing: list[Callable[[], object]] = [
        vast.current_user,  # dropped connections
        lambda: vast.start(1),  # not ours
        lambda: harness.client(api_key=key + "-revoked").list_instances(),  # 401
    ]
    errors: list[VastError] = []
    with caplog.at_level(logging.DEBUG):
        (offer,) = harness.cheap_offers(vast)
        instance_id = rent(vast, offer)
        vast.list_instances(labels=["job [vg:dev/a]"])
        vast.destroy(instance_id)
        for call in failing:
            with pytest.raises(VastError) as caught:
                call()
            errors.append(caught.value)
    assert [type(e).__name__ for e in errors] == ["TransportError", "NoSuchInstanceError", "AuthError"]
    assert key not in caplog.text
    assert any(r.name.startswith("httpx") for r in caplog.records), "httpx's own logs were captured too"
    for error in errors:
        assert key not in f"{error} {error!r} {getattr(error, '__notes__', '')}"
        assert error.__cause__ is None and error.__context__ is None


def test_last_server_time_is_the_emulators_virtual_clock(harness: Harness, vast: VastClient) -> None:
    assert vast.last_server_time is None
    control = Control(harness.emulator.url)
    frozen = control.freeze("2026-11-03T08:00:00Z")["now"]
    vast.gpu_names()
    assert vast.last_server_time == frozen
    control.advance(3600.5)
    with pytest.raises(NotFoundError):
        vast.stop(999_999)  # an error response carries the clock too
    assert vast.last_server_time == frozen + 3600.5
