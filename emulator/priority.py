"""Who runs on a machine: Vast's priority between on-demand rentals and interruptible (bid) instances. Pure
functions of the market state at one instant; `emulator.lifecycle` applies what they decide, at the exact
instants the standing changes (a rent, a destroy, a bid change, a start or stop, competing demand arriving or
leaving), and `emulator.bidding` holds the operations that change it.

The rules, from Vast's docs (guides/instances/choosing/instance-types, "Priority rules"; the rental-types FAQ):
1. an on-demand rental always outranks interruptible ones ("On-demand instances always have highest priority");
2. among interruptibles the highest bid wins ("Among interruptible instances, highest bid wins"), equal bids in
   the order they were placed (Vast documents no tie-break; first come is the least surprising);
3. the losers are paused, data kept, storage billed, and resume by themselves when they regain priority
   ("Paused instances resume when they regain priority"; "Resume automatically").
A bid below the host's floor (`min_bid` of the offer) never wins: the host does not run it.

One offer is one machine here (an instance rents all of an offer's GPUs), so a machine has one winner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from emulator.state import Instance, MarketState

BID_STEP = Decimal("0.001")
"""The smallest price step Vast takes ($/h; prices are 0.001..128): the bid that outbids another is this much
higher, which is what a bid search's `min_bid` shows for a machine someone holds at a bid."""

DEAD = frozenset({"exited", "offline", "unknown"})
OUTBID_MSG = "Outbid: a higher-priority rental holds the machine; resumes when the bid wins again"


@dataclass(frozen=True)
class Contender:
    price: Decimal
    since: float
    order: int
    instance_id: int | None  # ours; None for outside demand


def contending(state: MarketState, offer_id: int) -> list[Instance]:
    """Our live interruptible instances on the machine whose owners want them running (a stopped or dead one
    asks for nothing)."""
    return [i for i in state.instances.values()
            if i.is_bid and i.offer.id == offer_id and i.destroyed_at is None and i.intended_status == "running"
            and i.actual_status not in DEAD]


def held_on_demand(state: MarketState, offer_id: int, t: float) -> bool:
    """An on-demand rental holds the machine: one of ours (stopped ones keep their machine, as everywhere in the
    emulator), someone else's (a race lost, outside demand)."""
    if offer_id in state.taken:
        holder = state.taken[offer_id]
        if holder is None:
            return True
        inst = state.instances.get(holder)
        if inst is not None and inst.destroyed_at is None and not inst.is_bid:
            return True
    return any(d.offer_id == offer_id and d.kind == "on-demand" and d.active(t) for d in state.demand.values())


def _contenders(state: MarketState, offer_id: int, t: float, *, excluding: int | None = None) -> list[Contender]:
    out = [Contender(price=i.dph_base, since=i.created_at, order=i.id, instance_id=i.id)
           for i in contending(state, offer_id) if i.id != excluding]
    out += [Contender(price=d.price, since=d.start, order=-d.id, instance_id=None)
            for d in state.demand.values()
            if d.offer_id == offer_id and d.kind == "bid" and d.price is not None and d.active(t)]
    return out


def winner(state: MarketState, offer_id: int, t: float) -> Contender | None:
    """Whose bid runs on the machine at t; None when an on-demand rental holds it or no bid reaches the floor."""
    if held_on_demand(state, offer_id, t):
        return None
    offer = state.offers.get(offer_id)
    floor = offer.min_bid if offer is not None else Decimal(0)
    eligible = [c for c in _contenders(state, offer_id, t) if c.price >= floor]
    if not eligible:
        return None
    return min(eligible, key=lambda c: (-c.price, c.since, c.order))


def winning_bid(state: MarketState, offer_id: int, t: float, *, excluding: int | None = None) -> Decimal | None:
    """The lowest bid that would run on the machine now (the host's floor, or a step above the highest bid
    holding it, `excluding` one's own); None while an on-demand rental holds it (no bid runs then)."""
    if held_on_demand(state, offer_id, t):
        return None
    offer = state.offers.get(offer_id)
    floor = offer.min_bid if offer is not None else BID_STEP
    prices = [c.price for c in _contenders(state, offer_id, t, excluding=excluding)]
    return max([floor, *(p + BID_STEP for p in prices)])


def next_change(state: MarketState, after: float) -> float | None:
    """The next instant after `after` at which outside demand arrives or leaves."""
    moments = [m for d in state.demand.values() for m in (d.start, d.end) if m is not None and m > after]
    return min(moments) if moments else None


def changed_at(state: MarketState, t: float) -> Iterable[int]:
    """The machines whose outside demand arrives or leaves exactly at t."""
    return sorted({d.offer_id for d in state.demand.values() if d.start == t or d.end == t})
