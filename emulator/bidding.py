"""Interruptible instances' own operations: changing a bid (the API) and placing competing demand (the control
plane), so a test can outbid an instance at a known virtual time. Who then runs is `emulator.priority`'s rule,
applied by `emulator.lifecycle`; renting at a bid is the ordinary rent (`price` in `PUT /asks/{id}/`).

Sources: the backend's description of `PUT /api/v0/instances/bid_price/{id}/` (vast-ai/docs, auto-generated
OpenAPI `auto_put_api_v0_instances_bid_price_id_*.yaml`: scope `instance_write`, errors "Can't change price of
on-demand contract." and "Please set a bid price >= 0.001.", 404 `no_such_instance`), its hand-written page
(price 0.001..32 $/h, "<= 32.0 * number of GPUs") and the official CLI (`vastai change bid ID [--price P]`:
"If PRICE is not specified, then a winning bid price is used as the default").
"""

from __future__ import annotations

from decimal import Decimal

from emulator import billing, priority
from emulator.bodies import ChangeBidBody, DemandBody
from emulator.control import epoch_of
from emulator.errors import Conflict, InvalidArgs, NoSuchInstance, NotFound
from emulator.operations import ApiOperations
from emulator.state import Account, Demand, Instance

MIN_BID = Decimal("0.001")
MAX_BID_PER_GPU = Decimal(32)


class BiddingOperations(ApiOperations):
    """Changing a bid, and the control plane's competing demand."""

    def change_bid(self, account: Account, instance_id: int, body: ChangeBidBody) -> Instance:
        with self.lock:
            now = self._sync()
            inst = self._own(account, instance_id)
            if not inst.is_bid:
                raise InvalidArgs("Can't change price of on-demand contract.")
            if body.price is None:
                price = priority.winning_bid(self.state, inst.offer.id, now, excluding=inst.id)
                if price is None:
                    raise InvalidArgs("no bid can win this machine now: an on-demand rental holds it; give --price")
            else:
                price = billing.dec(body.price)
            if price < MIN_BID:
                raise InvalidArgs("Please set a bid price >= 0.001.")
            cap = MAX_BID_PER_GPU * inst.offer.num_gpus
            if price > cap:
                raise InvalidArgs(f"Please set a bid price <= {cap} (32 $/h per GPU); got {price}")
            inst.dph_base = price  # time so far was accrued at the old bid by the sync above
            self._rebalance(inst.offer.id, now)
            self._touch()
            return inst.model_copy()

    # ------------------------------------------------------------------------------- control plane

    def add_demand(self, body: DemandBody) -> Demand:
        """Someone else rents the machine on demand, or bids on it, from `start` (default now) until `end`."""
        with self.lock:
            now = self._sync()
            offer_id = body.offer_id
            if body.instance_id is not None:
                inst = self.state.instances.get(body.instance_id)
                if inst is None or inst.destroyed_at is not None:
                    raise NoSuchInstance(body.instance_id)
                offer_id = inst.offer.id
            if offer_id is None or offer_id not in self.state.offers:
                raise NotFound(f"no offer {offer_id}: name an offer_id or an instance_id on the market")
            start = now if body.start is None else max(now, epoch_of(body.start))
            end = None if body.end is None else epoch_of(body.end)
            if end is not None and end <= start:
                raise InvalidArgs(f"demand must end after it starts (start {start}, end {end})")
            if body.kind == "on-demand":
                holder = self.state.taken.get(offer_id, -1)
                if holder is not None and holder != -1 and not self.state.instances[holder].is_bid:
                    raise Conflict(f"offer {offer_id} is rented on demand by instance {holder}: on-demand rentals "
                                   "are never interrupted")
            demand = Demand(id=self.state.next_demand_id, offer_id=offer_id, kind=body.kind,
                            price=None if body.price is None else billing.dec(body.price), start=start, end=end)
            self.state.next_demand_id += 1
            self.state.demand[demand.id] = demand
            if demand.active(now):
                self._rebalance(offer_id, now)
            self._touch()
            return demand.model_copy()

    def end_demand(self, demand_id: int) -> Demand:
        """The competing renter leaves now (its machine's bids are judged again at once)."""
        with self.lock:
            now = self._sync()
            demand = self.state.demand.get(demand_id)
            if demand is None:
                raise NotFound(f"no demand {demand_id}")
            del self.state.demand[demand_id]
            self._rebalance(demand.offer_id, now)
            self._touch()
            return demand

    def demands(self) -> list[Demand]:
        with self.lock:
            return [d.model_copy() for d in self.state.demand.values()]
