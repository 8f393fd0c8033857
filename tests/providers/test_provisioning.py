"""Renting logic against a scripted in-memory marketplace: races, dead starts, adoption, deadlines.

The same paths run over real HTTP against the emulator in test_provider_emulator.py; here each marketplace
misbehaviour is scripted exactly, so every branch is exercised deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from fleet.instance import InstanceSpec, Quote
from providers import provisioning
from providers.market import Session
from providers.provisioning import ProvisioningError, Waiter, compose_label, ownership_tag, rent, tag_of
from vastclient import Instance, Offer, OfferQuery, OfferUnavailableError
from vastclient.errors import ApiError

KNOWN = ["RTX 4090", "RTX 3090", "A100 PCIE", "A100 SXM4"]


def offer(id_: int, machine: int, dph: float, gpu: str = "RTX 4090") -> Offer:
    return Offer(id=id_, machine_id=machine, gpu_name=gpu, num_gpus=1, dph_total=dph, storage_cost=0.1,
                 reliability=0.99, verification="verified", rentable=True, disk_space=500, geolocation="Oregon, US")


@dataclass
class ScriptedMarket:
    offers: list[Offer]
    taken: set[int] = field(default_factory=set)
    # statuses each new instance goes through on successive reads, by machine id
    lifecycles: dict[int, list[str]] = field(default_factory=dict)
    instances: dict[int, dict[str, Any]] = field(default_factory=dict)
    destroyed: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    next_id: int = 100
    # Vast's clock as the client would report it: one second further for every call
    last_server_time: float | None = None

    def _tick(self) -> None:
        self.last_server_time = (self.last_server_time or 1000.0) + 1

    def search_offers(self, query: OfferQuery) -> list[Offer]:
        self._tick()
        rented = {i["offer"] for i in self.instances.values()}
        return [o for o in self.offers if o.id not in rented]

    def create_instance(self, offer_id: int, **kw: Any) -> int:
        self._tick()
        if offer_id in self.taken:
            raise OfferUnavailableError("no_such_ask", status=404, code="no_such_ask")
        o = next(o for o in self.offers if o.id == offer_id)
        self.next_id += 1
        self.instances[self.next_id] = {"offer": offer_id, "machine": o.machine_id, "label": kw["label"],
                                        "reads": 0, "dph": o.dph_total}
        return self.next_id

    def get_instance(self, instance_id: int) -> Instance | None:
        self._tick()
        return self._peek(instance_id)

    def _peek(self, instance_id: int) -> Instance | None:
        row = self.instances.get(instance_id)
        if row is None:
            return None
        steps = self.lifecycles.get(row["machine"], ["loading", "running"])
        status = "stopped" if instance_id in self.stopped else steps[min(row["reads"], len(steps) - 1)]
        row["reads"] += 1
        return Instance(id=instance_id, actual_status=status, label=row["label"], machine_id=row["machine"],
                        dph_total=row["dph"], storage_cost=0.1, gpu_name="RTX 4090")

    def list_instances(self, *, labels: list[str] | None = None, statuses: Any = None,
                       ids: Any = None) -> list[Instance]:
        self._tick()
        rows = [self._peek(i) for i in list(self.instances) if ids is None or i in ids]
        return [r for r in rows if r is not None and (labels is None or r.label in labels)]

    def destroy(self, instance_id: int) -> None:
        self._tick()
        self.destroyed.append(instance_id)
        self.instances.pop(instance_id, None)

    def stop(self, instance_id: int) -> None:
        self._tick()
        self.stopped.append(instance_id)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def session(market: ScriptedMarket, clock: FakeClock | None = None) -> Session:
    """What one provider process keeps for the account: a new one models a new process."""
    clock = clock or FakeClock()
    return Session(market, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


def rent_on(market: ScriptedMarket, spec: InstanceSpec, *, timeout: float = 60,
            times: provisioning.VastTimes | None = None) -> tuple[Instance, Quote | None]:
    """One create in a new provider process, its waiter and instance board on one fake clock."""
    clock = FakeClock()
    return rent(session(market, clock), spec, KNOWN, tag=TAG, times=times,
                waiter=Waiter(timeout=timeout, clock=clock, sleep=clock.sleep))


def spec(**kw: Any) -> InstanceSpec:
    base: dict[str, Any] = {"team": "ml-engineering", "gpu_name": "RTX_4090", "image": "img:1", "max_dph": 0.5}
    return InstanceSpec(**{**base, **kw})


def waiter(timeout: float = 60) -> Waiter:
    clock = FakeClock()
    return Waiter(timeout=timeout, clock=clock, sleep=clock.sleep)


TAG = ownership_tag("ml-engineering", "inference-0")


def test_labels_carry_the_ownership_tag() -> None:
    assert tag_of(compose_label(TAG, "my box")) == TAG
    assert tag_of(compose_label(TAG, None)) == TAG
    assert tag_of("someone else's label") is None


def test_rents_the_cheapest_offer_and_waits_for_running() -> None:
    market = ScriptedMarket([offer(1, 10, 0.45), offer(2, 11, 0.30), offer(3, 12, 0.40)])
    inst, quote = rent_on(market, spec())
    assert quote is not None and quote.offer_id == 2
    assert inst.actual_status == "running"
    assert tag_of(inst.label) == TAG
    assert len(market.instances) == 1


def test_offer_taken_meanwhile_tries_the_next() -> None:
    market = ScriptedMarket([offer(1, 10, 0.30), offer(2, 11, 0.35)], taken={1})
    _, quote = rent_on(market, spec())
    assert quote is not None and quote.offer_id == 2
    assert len(market.instances) == 1


def test_instance_that_exits_is_destroyed_and_another_machine_used() -> None:
    market = ScriptedMarket([offer(1, 10, 0.30), offer(2, 11, 0.35)], lifecycles={10: ["loading", "exited"]})
    inst, quote = rent_on(market, spec())
    assert quote is not None and quote.offer_id == 2
    assert market.destroyed == [101]
    assert list(market.instances) == [inst.id]


def test_stuck_loading_hits_the_deadline_and_leaves_nothing_rented() -> None:
    market = ScriptedMarket([offer(1, 10, 0.30)], lifecycles={10: ["loading"]})
    with pytest.raises(ProvisioningError, match="still 'loading' after 30s"):
        rent_on(market, spec(), timeout=30)
    assert market.instances == {}
    assert market.destroyed == [101]


def test_interrupted_create_is_adopted_not_rented_twice() -> None:
    market = ScriptedMarket([offer(1, 10, 0.30), offer(2, 11, 0.35)])
    first, _ = rent_on(market, spec(label="box"))
    again, quote = rent_on(market, spec(label="renamed"))
    assert again.id == first.id
    assert quote is None  # its offer is gone from the market: the outputs keep check's quote and its own $/h
    assert len(market.instances) == 1


def test_several_instances_carrying_the_tag_adopt_one_and_release_the_rest() -> None:
    """Each extra instance under one ownership tag bills and is in no state: keep the one furthest along (the
    oldest of equals), release the others, and say so."""
    market = ScriptedMarket([offer(1, 10, 0.30), offer(2, 11, 0.35), offer(3, 12, 0.40)],
                            lifecycles={11: ["loading"]})
    first, _ = rent_on(market, spec(label="box"))
    label = str(first.label)
    for extra, (offer_id, machine) in ((150, (2, 11)), (90, (3, 10))):  # a booting copy, and an older one
        market.instances[extra] = {"offer": offer_id, "machine": machine, "label": label, "reads": 1, "dph": 0.3}
    said: list[str] = []
    clock = FakeClock()
    again, _ = rent(session(market, clock), spec(label="box"), KNOWN, tag=TAG, log=said.append,
                    waiter=Waiter(timeout=60, clock=clock, sleep=clock.sleep))
    assert again.id == 90  # running, and older than the first create's 101
    assert sorted(market.destroyed) == [101, 150] and list(market.instances) == [90]
    assert [m for m in said if "also carries ownership tag" in m] == [
        f"instance {i} also carries ownership tag {TAG}: releasing it (keeping 90; one instance per tag)"
        for i in (101, 150)]


def test_rent_records_vast_times_of_the_rent_and_of_reaching_running() -> None:
    market = ScriptedMarket([offer(1, 10, 0.30)])
    times = provisioning.VastTimes()
    rent_on(market, spec(), times=times)
    # list (adoption check) 1001, search 1002, create -> 1003; listings: loading 1004, running 1005
    assert (times.created_at, times.state_since) == (1003.0, 1005.0)


def test_rent_stopped_records_the_stop_response_time() -> None:
    market = ScriptedMarket([offer(1, 10, 0.30)])
    times = provisioning.VastTimes()
    rent_on(market, spec(state="stopped"), times=times)
    assert (times.created_at, times.state_since) == (1003.0, 1006.0)


def test_desired_stopped_is_stopped_after_it_starts() -> None:
    market = ScriptedMarket([offer(1, 10, 0.30)])
    inst, _ = rent_on(market, spec(state="stopped"))
    assert market.stopped == [inst.id]
    assert inst.actual_status == "stopped"


def test_no_offer_within_cap_names_the_cheapest_available() -> None:
    market = ScriptedMarket([offer(1, 10, 0.80), offer(2, 11, 0.95)])
    with pytest.raises(provisioning.NoOfferError, match=r"within max_dph \$0.50/h; the cheapest .* \$0.800/h"):
        provisioning.quote(session(market), spec(), KNOWN)


class ListingsFailOnceRented(ScriptedMarket):
    """Vast answering 500 to every listing once an instance exists: past the client's retries while the create
    waits for its instance to boot."""

    def list_instances(self, *, labels: list[str] | None = None, statuses: Any = None,
                       ids: Any = None) -> list[Instance]:
        if self.instances:
            self._tick()
            raise ApiError("HTTP 500 internal_error", status=500, code="internal_error")
        return super().list_instances(labels=labels, statuses=statuses, ids=ids)


def test_create_failing_after_the_rent_releases_the_instance() -> None:
    """The create fails and the engine records nothing: what it rented must not stay behind as an orphan."""
    market = ListingsFailOnceRented([offer(1, 10, 0.30)])
    with pytest.raises(ApiError, match="500"):
        rent_on(market, spec())
    assert market.destroyed == [101]
    assert market.instances == {}


def test_adopted_instance_is_released_when_the_create_fails_after_all() -> None:
    market = ScriptedMarket([offer(1, 10, 0.30)])
    first, _ = rent_on(market, spec())  # rented by an earlier create that was then interrupted
    retry = session(market)

    def status_fails(_instance_id: int) -> Instance | None:
        raise ApiError("HTTP 500 internal_error", status=500, code="internal_error")

    retry.board.get_instance = status_fails  # type: ignore[method-assign,assignment]
    with pytest.raises(ApiError, match="500"):
        rent(retry, spec(), KNOWN, tag=TAG, waiter=waiter())
    assert market.destroyed == [first.id]
    assert market.instances == {}
