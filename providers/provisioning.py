"""Renting, adopting, watching and releasing Vast.ai instances: the provider's logic, without Pulumi.

Marketplace realities this code is shaped by (see SkyPilot's Vast provisioner for the same lessons):
- An offer can be taken between search and rent (404 no_such_ask / 410): try the next offer.
- A rented instance can die while starting (`exited`, `unknown`, `offline` never recover by themselves):
  destroy it at once and try another machine, because a blind retry leaves a second paid instance.
- A create whose outcome is unknown (interrupted engine, lost connection) must never rent twice: every instance
  carries an ownership tag in its label, and create first adopts an instance that already carries its tag.
- Search results cannot be trusted to have applied every filter: re-check the fields we filtered on.
- Searches are scarce (about ten a minute per key): a process searches once per query and quotes and rents
  distinct offers from that one result (`providers.market.OfferBook`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from fleet import gpus
from fleet.instance import InstanceSpec, Quote
from providers.market import Session, search_matching
from vastclient import Instance, Offer, OfferQuery, OfferUnavailableError, VastClient, VastError, keep_one

MAX_RENT_ATTEMPTS = 5
_TAG_OPEN, _TAG_CLOSE = "[", "]"


class ProvisioningError(RuntimeError):
    """Renting failed in a way the user must act on; whatever was rented has been released."""


class NoOfferError(ProvisioningError):
    pass


def ownership_tag(stack: str, name: str) -> str:
    return f"vg:{stack}/{name}"


def incarnation_tag(base: str, identity: Mapping[str, Any]) -> str:
    """`vg:<stack>/<name>#<digest>`: the digest of what is rented tells a replacement from a retry."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{base}#{digest}"


def compose_label(tag: str, label: str | None) -> str:
    """Vast has one label per instance: it carries the user's label and, at the end, our ownership tag."""
    return f"{label} {_TAG_OPEN}{tag}{_TAG_CLOSE}" if label else f"{_TAG_OPEN}{tag}{_TAG_CLOSE}"


def tag_of(vast_label: str | None) -> str | None:
    if not vast_label or not vast_label.endswith(_TAG_CLOSE) or _TAG_OPEN not in vast_label:
        return None
    return vast_label[vast_label.rindex(_TAG_OPEN) + 1 : -1]


def query_for(spec: InstanceSpec, known_gpus: Sequence[str], *, capped: bool = True) -> OfferQuery:
    return OfferQuery(
        gpu_names=tuple(gpus.resolve(spec.gpu_name, known_gpus, where="gpu_name")),
        num_gpus=spec.num_gpus,
        max_dph=spec.max_dph if capped else None,
        min_reliability=spec.min_reliability,
        verified_only=spec.verified_only,
        geolocation=tuple(c.strip() for c in spec.geolocation.split(',')) if spec.geolocation else (),
        disk_gb=spec.disk_gb,
        order=(("dph_total", "asc"),),
        limit=64,
        # An interruptible instance searches bid prices and places its max_bid: only machines that bid wins
        # now, where it plus storage stays within max_dph (`OfferQuery.max_bid`).
        offer_type="bid" if spec.interruptible else "on-demand",
        max_bid=spec.max_bid if spec.interruptible and capped else None,
    )


def matching_offers(client: VastClient, spec: InstanceSpec, known_gpus: Sequence[str], *,
                    capped: bool = True) -> list[Offer]:
    """Cheapest first, each re-checked against the query (`providers.market.search_matching`)."""
    return search_matching(client, query_for(spec, known_gpus, capped=capped))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def quote(market: Session, spec: InstanceSpec, known_gpus: Sequence[str]) -> Quote:
    """The cheapest offer within the cap that no other new instance of this process was quoted; NoOfferError
    says what is available instead."""
    query = query_for(spec, known_gpus)
    found = market.book.quote(query)
    what = f"{spec.num_gpus}x {spec.gpu_name}"
    if found is not None:
        best, matched = found
        return quote_from(best, matched=matched, query=query)
    within = market.book.matched(query)
    if spec.interruptible and not within:
        raise NoOfferError(_no_bid_offer(market, spec, known_gpus, what))
    if within:
        raise NoOfferError(
            f"only {within} {what} offers within max_dph ${spec.max_dph:.2f}/h on the marketplace, all quoted to "
            "other new instances of this stack: declare fewer, raise max_dph (within the team's cap) or relax "
            "min_reliability/verified_only/geolocation"
        )
    uncapped = matching_offers(market.client, spec, known_gpus, capped=False)
    if uncapped:
        raise NoOfferError(
            f"no {what} offer within max_dph ${spec.max_dph:.2f}/h; the cheapest matching offer now is "
            f"${uncapped[0].dph_total:.3f}/h ({len(uncapped)} offers): raise max_dph (within the team's cap) "
            "or relax min_reliability/verified_only/geolocation"
        )
    raise NoOfferError(
        f"no {what} offer on the marketplace meets min_reliability {spec.min_reliability}, "
        f"verified_only={spec.verified_only}, geolocation={spec.geolocation!r}; relax them or pick another GPU"
    )


def quote_from(offer: Offer, *, matched: int, query: OfferQuery | None = None) -> Quote:
    """The quote of renting `offer`: on demand, its price; at a bid (`query.max_bid`), the bid plus storage."""
    if query is not None and query.max_bid is not None:
        return Quote(offer_id=offer.id, gpu_name=offer.gpu_name, dph_total=round(query.bid_total(offer), 6),
                     storage_cost=offer.storage_cost, matched=matched, quoted_at=now_iso(), bid=query.max_bid)
    return Quote(offer_id=offer.id, gpu_name=offer.gpu_name, dph_total=offer.dph_total,
                 storage_cost=offer.storage_cost, matched=matched, quoted_at=now_iso())


def _no_bid_offer(market: Session, spec: InstanceSpec, known_gpus: Sequence[str], what: str) -> str:
    """Why no offer takes an interruptible instance's bid: what bid would win, and at what $/h."""
    uncapped = matching_offers(market.client, spec, known_gpus, capped=False)
    if not uncapped:
        return (f"no {what} offer for interruptible rental meets min_reliability {spec.min_reliability}, "
                f"verified_only={spec.verified_only}, geolocation={spec.geolocation!r}; relax them or pick "
                "another GPU")
    cheapest = min(uncapped, key=lambda o: o.min_bid if o.min_bid is not None else o.dph_total)
    # Vast leaves min_bid out for an offer with no bid floor: what wins there is not known, so none is quoted.
    lowest = ("no bid floor is published for the cheapest" if cheapest.min_bid is None
              else f"the lowest winning bid now is ${cheapest.min_bid:.3f}/h")
    return (f"no {what} offer takes a bid of ${spec.max_bid:.3f}/h within max_dph ${spec.max_dph:.2f}/h; "
            f"{lowest} (offer {cheapest.id}, ${cheapest.dph_total:.3f}/h with storage): raise max_bid (within "
            "the team's bid cap) and max_dph, or relax min_reliability/verified_only/geolocation")


@dataclass
class VastTimes:
    """Moments on Vast's clock (epoch seconds, from the confirming response; see `VastClient.last_server_time`)
    that `rent` fills in for the provider's outputs: `created_at` the rent response (an adopted instance's
    `start_date`), `state_since` when the desired state took effect (the first poll that saw it running, or
    the stop response)."""

    created_at: float | None = None
    state_since: float | None = None


class InstanceSource(Protocol):
    def get_instance(self, instance_id: int) -> Instance | None: ...


@dataclass
class Waiter:
    """Polls an instance against a monotonic deadline; injectable clock and sleep for tests."""

    timeout: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    first_interval: float = 0.5
    max_interval: float = 10.0

    def until_running(self, source: InstanceSource, instance_id: int, *, outbid_ok: bool = False) -> Instance:
        """Until the instance runs (or, with `outbid_ok`, an interruptible one is paused by a higher bid: it has
        its machine's place in line and resumes by itself, so waiting for it would only time out)."""
        deadline = self.clock() + self.timeout
        interval = self.first_interval
        while True:
            inst = source.get_instance(instance_id)
            if inst is None:
                raise ProvisioningError(f"instance {instance_id} disappeared while starting")
            if inst.phase == "running" or (outbid_ok and is_outbid(inst, "running")):
                return inst
            if inst.phase == "failed":
                raise ProvisioningError(
                    f"instance {instance_id} on machine {inst.machine_id} ended {inst.actual_status!r} while "
                    f"starting ({inst.status_msg or 'no message from Vast'})"
                )
            if self.clock() + interval > deadline:
                raise ProvisioningError(
                    f"instance {instance_id} still {inst.actual_status or 'provisioning'!r} after "
                    f"{self.timeout:.0f}s; raise vastai:provisionTimeout for large images"
                )
            self.sleep(interval)
            interval = min(interval * 1.5, self.max_interval)


def is_outbid(inst: Instance, declared: str) -> bool:
    """An interruptible instance Vast shows stopped while its declaration says running: outbid. Vast shows an
    outbid instance exactly like a stopped one (current, intended and next state `stopped`: dstack's Vast
    backend, pull request 4037), so a bid instance stopped by hand behind Pulumi's back reads the same; it
    resumes when its bid wins, like an outbid one, or when someone starts it."""
    return bool(inst.is_bid) and inst.phase == "stopped" and declared == "running"


def release(client: VastClient, instance_id: int) -> None:
    """Destroy, tolerating an instance that is already gone."""
    client.destroy(instance_id)


def rent(market: Session, spec: InstanceSpec, known_gpus: Sequence[str], *, tag: str, waiter: Waiter,
         log: Callable[[str], None] = lambda _m: None, times: VastTimes | None = None,
         prefer: int | None = None) -> tuple[Instance, Quote | None]:
    """Adopt or rent one instance for spec and bring it to its desired state; `times` receives when, on
    Vast's clock, it was rented and reached that state. `prefer` is the offer `check` quoted for it. The quote
    returned is the offer rented; None for an adopted instance (its offer is gone from the market, and what it
    costs is its own `dph_total`)."""
    times = times if times is not None else VastTimes()
    client = market.client
    label = compose_label(tag, spec.label)
    problems: list[str] = []
    owned = adoptable(market, tag, log)
    if owned is not None:
        log(f"adopting instance {owned.id} already tagged {tag} (an earlier create was interrupted)")
        try:
            inst = _settle(market, owned.id, spec, waiter, times)
        except ProvisioningError as err:
            problems.append(str(err))
            release(client, owned.id)
            market.book.avoid_machine(owned.machine_id)
        except Exception:
            _release_before_failing(client, owned.id, log)
            raise
        else:
            times.created_at = owned.start_date
            return inst, None

    query = query_for(spec, known_gpus)
    for attempt in range(MAX_RENT_ATTEMPTS):
        claimed = market.book.claim(query, prefer=prefer)
        if claimed is None:
            break
        offer, matched = claimed
        try:
            instance_id = client.create_instance(
                offer.id, image=spec.image, disk_gb=spec.disk_gb, label=label, env=spec.env, onstart=spec.onstart,
                price=spec.max_bid if spec.interruptible else None,
            )
        except OfferUnavailableError:
            log(f"offer {offer.id} was taken before we could rent it; trying the next one")
            market.book.gone(offer.id)
            continue
        rented_at = client.last_server_time
        try:
            inst = _settle(market, instance_id, spec, waiter, times)
        except ProvisioningError as err:
            problems.append(str(err))
            log(f"attempt {attempt + 1}: {err}; destroying it and trying another machine")
            release(client, instance_id)
            market.book.avoid_machine(offer.machine_id)
            continue
        except Exception:
            _release_before_failing(client, instance_id, log)
            raise
        times.created_at = rented_at
        return inst, quote_from(offer, matched=matched, query=query)
    detail = "; ".join(problems) if problems else "no remaining offer within max_dph"
    raise ProvisioningError(f"could not rent {spec.num_gpus}x {spec.gpu_name} for {tag}: {detail}")


def adoptable(market: Session, tag: str, log: Callable[[str], None]) -> Instance | None:
    """The instance an earlier, interrupted create rented under `tag`, if any. Several carrying the tag (a
    create retried by hand, or a rent that went through twice) is resolved here: one is kept
    (`vastclient.keep_one`), the others are released, since each bills and none is in any state."""
    tagged = market.board.find_tagged(tag, tag_of)
    if not tagged:
        return None
    keep, extras = keep_one(tagged)
    for extra in extras:
        log(f"instance {extra.id} also carries ownership tag {tag}: releasing it (keeping {keep.id}; one "
            "instance per tag)")
        release(market.client, extra.id)
    return keep


def _release_before_failing(client: VastClient, instance_id: int, log: Callable[[str], None]) -> None:
    """A create that fails records nothing in the state, so an instance it rented (or adopted) and then lost
    track of (Vast erring past the client's retries while it boots) would bill on as an orphan as soon as the
    declaration stops naming it: only a retry of this very create would adopt it. Release it, best effort; the
    caller re-raises the original error."""
    try:
        release(client, instance_id)
    except VastError as err:
        log(f"could not release instance {instance_id} after the failure ({err}); a retry of this create adopts it")


def _settle(market: Session, instance_id: int, spec: InstanceSpec, waiter: Waiter, times: VastTimes) -> Instance:
    inst = waiter.until_running(market.board, instance_id, outbid_ok=spec.interruptible)
    times.state_since = market.board.last_server_time  # the listing that saw it running
    if spec.state == "stopped":
        client = market.client
        client.stop(instance_id)
        times.state_since = client.last_server_time
        refreshed = client.get_instance(instance_id)
        inst = refreshed if refreshed is not None else inst
    return inst
