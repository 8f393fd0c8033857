"""Pacing after Vast names a rate limit, the shared SSL context, and per-thread server time."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import pytest

from emulator import EmulatorServer
from emulator.bodies import ConfigBody
from emulator.testing import EmulatorAccount
from vastclient import VastClient
from vastclient._pacing import PUBLISHED_LIMITS, Pacer, limit_class
from vastclient._retry import Deadline
from vastclient._transport import shared_ssl_context


@pytest.mark.parametrize(("method", "path", "cls"), [
    ("PUT", "/api/v0/asks/123/", "create"),
    ("GET", "/api/v0/instances/42/", "show"),
    ("PUT", "/api/v0/instances/42/", "manage"),
    ("DELETE", "/api/v0/instances/42/", "destroy"),
    ("PUT", "/api/v0/instances/bid_price/42/", "bid"),
    ("GET", "/api/v1/instances/", "list"),
    ("GET", "/api/v0/charges/", "charges"),
    ("POST", "/api/v0/bundles/", "search"),
    ("GET", "/api/v0/users/current/", "/api/v0/users/current/"),
])
def test_requests_count_against_vasts_published_limit_classes(method: str, path: str, cls: str) -> None:
    assert limit_class(method, path) == cls


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_nothing_is_paced_until_vast_names_a_threshold() -> None:
    t = FakeTime()
    pacer = Pacer(t.clock, t.sleep)
    for _ in range(5):
        pacer.acquire("create", Deadline(t.clock, 60))
    pacer.learn("create", "slow down")  # no threshold in the text: nothing to learn
    pacer.acquire("create", Deadline(t.clock, 60))
    assert t.sleeps == []


def test_after_a_threshold_requests_of_that_class_leave_at_its_rate() -> None:
    t = FakeTime()
    pacer = Pacer(t.clock, t.sleep)
    pacer.learn("create", "API requests too frequent endpoint threshold=4.5")
    starts = []
    for _ in range(10):
        pacer.acquire("create", Deadline(t.clock, 60))
        starts.append(t.now)
        pacer.acquire("list", Deadline(t.clock, 60))  # another class is not held back
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([1.08 / 4.5] * 9)


def test_a_pacing_client_starts_from_vasts_published_limits() -> None:
    t = FakeTime()
    pacer = Pacer(t.clock, t.sleep, PUBLISHED_LIMITS)
    for _ in range(13):
        pacer.acquire("create", Deadline(t.clock, 60))
    # A burst of three (Vast allows 4.5: one in hand against jitter), then 4.5 a second less the margin.
    assert t.now == pytest.approx(10 * 1.03 / 4.5)
    start = t.now
    for _ in range(8):
        pacer.acquire("search", Deadline(t.clock, 600))
    assert t.now == pytest.approx(start)  # eight searches are free, the ninth waits ~6.5 s
    pacer.acquire("search", Deadline(t.clock, 600))
    assert t.now == pytest.approx(start + 6 * 1.03)


def test_a_rejection_while_pacing_keeps_the_slots_already_handed_out() -> None:
    t = FakeTime()
    pacer = Pacer(t.clock, lambda _s: None, PUBLISHED_LIMITS)  # callers reserve slots without waiting
    waits = []
    for i in range(6):
        if i == 3:  # one of them arrived early and was refused: Vast says its bucket is empty
            pacer.learn("create", "API requests too frequent endpoint threshold=4.5")
        before = pacer._buckets["create"].tokens
        pacer.acquire("create", Deadline(t.clock, 60))
        waits.append(max(0.0, -(before - 1)) * 1.03 / 4.5)
    # The three reserved after the rejection queue behind each other, none sharing a slot.
    assert waits[3:] == pytest.approx([1.03 / 4.5, 2 * 1.03 / 4.5, 3 * 1.03 / 4.5])


def test_pacing_never_waits_past_the_deadline() -> None:
    t = FakeTime()
    pacer = Pacer(t.clock, t.sleep)
    pacer.learn("list", "threshold=0.1")  # Vast's bucket is empty now: the next request waits 10.8 s
    pacer.acquire("list", Deadline(t.clock, 2))
    pacer.acquire("list", Deadline(t.clock, 60))
    assert t.sleeps == pytest.approx([2, 10.8 + 10.8 - 2])


def test_after_the_first_rejection_vast_rejects_nothing_more(
        emulator: EmulatorServer, emulator_account: Callable[..., EmulatorAccount]) -> None:
    acct = emulator_account()
    emulator.market.configure(ConfigBody(rate_limits=True))
    with VastClient(api_key=acct.api_key, base_url=emulator.url) as vast:
        for _ in range(6):
            vast.list_instances()
    listed = emulator.market.requests.records("list")
    assert [r.status for r in listed].count(429) == 1
    assert [r.status for r in listed].count(200) == 6


def test_concurrent_callers_share_what_the_pacer_learnt(
        emulator: EmulatorServer, emulator_account: Callable[..., EmulatorAccount]) -> None:
    acct = emulator_account()
    emulator.market.configure(ConfigBody(rate_limits=True))
    errors: list[BaseException] = []
    with VastClient(api_key=acct.api_key, base_url=emulator.url) as vast:
        def show(i: int) -> None:
            try:
                vast.get_instance(1000 + i)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=show, args=(i,)) for i in range(12)]
        started = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.monotonic() - started
        learnt = vast._t.pacer.interval("show")
    assert errors == []
    statuses = [r.status for r in emulator.market.requests.records("show")]
    # Show allows 2/s (burst 2): the first wave of twelve meets 429s, which teach every caller the threshold;
    # all twelve then get through, spaced by it (how many of the first wave were rejected depends on timing).
    assert statuses.count(200) == 12
    assert learnt == pytest.approx(1.08 / 2.0)
    assert elapsed >= 4.0


def test_one_ssl_context_per_process() -> None:
    assert shared_ssl_context() is shared_ssl_context()


def test_each_thread_sees_the_server_time_of_its_own_last_response(
        emulator: EmulatorServer, emulator_account: Callable[..., EmulatorAccount]) -> None:
    acct = emulator_account()
    seen: dict[str, float | None] = {}
    with VastClient(api_key=acct.api_key, base_url=emulator.url) as vast:
        vast.gpu_names()
        main_time = vast.last_server_time

        def other() -> None:
            seen["before"] = vast.last_server_time
            vast.gpu_names()
            seen["after"] = vast.last_server_time

        th = threading.Thread(target=other)
        th.start()
        th.join()
        assert vast.last_server_time == main_time
    assert main_time is not None
    assert seen["before"] is None
    assert seen["after"] is not None
