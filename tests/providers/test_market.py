"""The provider process's shared market view: one search per query, distinct quotes and claims, coalesced
status listings, and the widened worker pool, against the emulator over real HTTP."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from emulator import EmulatorServer
from emulator.testing import EmulatorAccount
from fleet.instance import InstanceSpec
from providers import provisioning
from providers.host import widen_worker_pool
from providers.market import OfferBook, Session
from providers.settings import ProviderSettings
from providers.vast_instance import VastInstanceProvider
from vastclient import VastClient

KNOWN: list[str] = []


def spec(**kw: Any) -> InstanceSpec:
    base: dict[str, Any] = {"team": "data-science", "gpu_name": "RTX_3090", "image": "img:1", "max_dph": 5.0,
                            "min_reliability": 0.0, "verified_only": False}
    return InstanceSpec(**{**base, **kw})


@pytest.fixture
def client(emulator: EmulatorServer, emulator_account: Callable[..., EmulatorAccount]) -> VastClient:
    acct = emulator_account(balance=10_000)
    vast = VastClient(api_key=acct.api_key, base_url=emulator.url)
    KNOWN[:] = vast.gpu_names()
    return vast


def searches(emulator: EmulatorServer) -> int:
    return len(emulator.market.requests.records("search"))


def test_quotes_for_new_instances_of_one_query_are_distinct_and_cost_one_search(
        emulator: EmulatorServer, client: VastClient) -> None:
    session = Session(client)
    quotes = [provisioning.quote(session, spec(), KNOWN) for _ in range(5)]
    assert len({q.offer_id for q in quotes}) == 5
    # The k-th new instance is quoted at the k-th cheapest offer: the fleet's estimate is what renting costs.
    assert [q.dph_total for q in quotes] == sorted(q.dph_total for q in quotes)
    assert searches(emulator) == 1


def test_when_every_matching_offer_is_quoted_the_failure_says_so(client: VastClient) -> None:
    session = Session(client)
    query = provisioning.query_for(spec(), KNOWN)
    available = len(client.search_offers(query.model_copy(update={"limit": 1000})))
    for _ in range(available):
        provisioning.quote(session, spec(), KNOWN)
    with pytest.raises(provisioning.NoOfferError, match=rf"only {available} 1x RTX_3090 offers .* all quoted"):
        provisioning.quote(session, spec(), KNOWN)


def test_a_short_shelf_is_searched_again_with_a_larger_limit() -> None:
    with EmulatorServer(port=0, seed=5, provision_delay=0, offers=3000) as big:
        key = secrets.token_hex(16)
        big.create_account(api_key=key, balance=100)
        with VastClient(api_key=key, base_url=big.url) as vast:
            book = OfferBook(vast)
            query = provisioning.query_for(spec(gpu_name="RTX_4090", max_dph=100), vast.gpu_names())
            # 64 offers per search: claiming more needs a second, larger search, and never repeats an offer.
            claimed = [got[0].id for got in (book.claim(query) for _ in range(100)) if got is not None]
            assert len(claimed) == len(set(claimed)) == 100
            assert len(big.market.requests.records("search")) == 2
            # Claim the whole market: the limit keeps doubling, and once dry the shelf is looked at again at
            # most once every few seconds, not once per create.
            while (got := book.claim(query)) is not None and len(claimed) < 2000:
                claimed.append(got[0].id)
            assert len(claimed) == len(set(claimed)) == book.matched(query)
            dry = [book.claim(query) for _ in range(20)]
            assert dry == [None] * 20
            assert len(big.market.requests.records("search")) <= 6


def test_concurrent_claims_get_distinct_offers_from_one_search(emulator: EmulatorServer, client: VastClient) -> None:
    book = OfferBook(client)
    query = provisioning.query_for(spec(), KNOWN)
    got: list[int] = []
    lock = threading.Lock()

    def claim() -> None:
        found = book.claim(query)
        assert found is not None
        with lock:
            got.append(found[0].id)

    threads = [threading.Thread(target=claim) for _ in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(got) == 12 and len(set(got)) == 12
    assert searches(emulator) == 1


def test_claim_prefers_the_quoted_offer_and_skips_gone_ones(client: VastClient) -> None:
    book = OfferBook(client)
    query = provisioning.query_for(spec(), KNOWN)
    cheapest = book.quote(query)
    second = book.quote(query)
    assert cheapest is not None and second is not None
    claimed = book.claim(query, prefer=second[0].id)
    assert claimed is not None and claimed[0].id == second[0].id
    book.gone(cheapest[0].id)
    nxt = book.claim(query, prefer=cheapest[0].id)
    assert nxt is not None and nxt[0].id not in {cheapest[0].id, second[0].id}


def test_concurrent_waiters_share_listings(emulator: EmulatorServer, client: VastClient) -> None:
    session = Session(client)
    ids = [client.create_instance(o.id, image="img:1", disk_gb=16, label=f"w{i}")
           for i, o in enumerate(client.search_offers(provisioning.query_for(spec(), KNOWN))[:8])]
    emulator.market.requests.clear()
    seen: dict[int, str | None] = {}

    def wait(instance_id: int) -> None:
        inst = provisioning.Waiter(timeout=30).until_running(session.board, instance_id)
        seen[instance_id] = inst.actual_status

    threads = [threading.Thread(target=wait, args=(i,)) for i in ids]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert seen == dict.fromkeys(ids, "running")
    assert len(emulator.market.requests.records("show")) == 0
    # Eight waiters, one filtered listing each time the board looks (at least one, far fewer than eight).
    assert 1 <= len(emulator.market.requests.records("list")) <= 3


def test_a_board_answer_is_never_older_than_the_question(emulator: EmulatorServer, client: VastClient) -> None:
    session = Session(client)
    (offer,) = client.search_offers(provisioning.query_for(spec(), KNOWN))[:1]
    instance_id = client.create_instance(offer.id, image="img:1", disk_gb=16, label="x")
    first = session.board.get_instance(instance_id)
    assert first is not None and first.actual_status == "running"
    client.stop(instance_id)
    later = session.board.get_instance(instance_id)
    assert later is not None and later.actual_status == "stopped"
    assert session.board.get_instance(999_999) is None


def test_the_provider_widens_the_dynamic_hosts_worker_pool() -> None:
    # The SDK's host serves gRPC from a 4-worker pool; a create that waits for a boot must not cap rollouts at 4.
    pool = ThreadPoolExecutor(max_workers=4)
    widened = pool.submit(widen_worker_pool, 16).result()
    assert widened is True
    barrier = threading.Barrier(12, timeout=10)
    results = [pool.submit(barrier.wait) for _ in range(12)]  # deadlocks (timeout) with only 4 workers
    assert sorted(r.result() for r in results) == list(range(12))
    pool.shutdown()
    assert widen_worker_pool(16) is False  # not inside a pool: nothing to do


def test_checks_of_a_new_fleet_cost_one_search(emulator: EmulatorServer,
                                                emulator_account: Callable[..., EmulatorAccount]) -> None:
    acct = emulator_account(balance=100)
    p = VastInstanceProvider()
    p._settings = ProviderSettings(api_key=acct.api_key, base_url=emulator.url, provision_timeout=30)
    base = spec().model_dump()
    started = time.monotonic()
    quotes = [p.check({}, {**base, "ownership_tag": f"vg:data-science/n-{i}", "__provider": "x"}).inputs["quote"]
              for i in range(10)]
    assert time.monotonic() - started < 30
    assert len({q["offer_id"] for q in quotes}) == 10
    assert searches(emulator) == 1
    assert len(emulator.market.requests.records("gpu_names")) == 1


def test_a_rollouts_status_listings_wait_for_their_batch(emulator: EmulatorServer, client: VastClient) -> None:
    """Rents arrive one by one (Vast paces them at 4.5/s): the board lists once a page of them waits, or once no
    new one has come for a moment, not as soon as the first asks (which cost a listing per one or two rents)."""
    session = Session(client)
    found = client.search_offers(provisioning.query_for(spec(), KNOWN).model_copy(update={"limit": 256}))
    offers = list({o.machine_id: o for o in found}.values())[:24]  # one rent per machine: none refused
    assert len(offers) >= 20
    emulator.market.requests.clear()
    seen: dict[int, str | None] = {}

    def rent_and_wait(i: int) -> None:
        instance_id = client.create_instance(offers[i].id, image="img:1", disk_gb=16, label=f"b{i}")
        inst = provisioning.Waiter(timeout=60).until_running(session.board, instance_id)
        seen[instance_id] = inst.actual_status

    threads = []
    for i in range(len(offers)):
        threads.append(threading.Thread(target=rent_and_wait, args=(i,)))
        threads[-1].start()
        time.sleep(0.15)  # one rent after another, for about three seconds
    for th in threads:
        th.join()
    assert set(seen.values()) == {"running"} and len(seen) == len(offers)
    # Under a page of ids: one listing once the rents stop; without the wait, one every 2 s from the first rent.
    assert len(emulator.market.requests.records("list")) == 1
