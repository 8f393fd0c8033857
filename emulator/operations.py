"""The API backend: one method per Vast.ai API operation, raising the typed errors of `emulator.errors`. No
HTTP here (`emulator.responses` parses, calls these, serialises).

Decisions where Vast is not documented:
- renting needs credit > 0 (`missing_billing`), so does starting; a bid below the offer's `min_bid` is an
  `invalid_price`; a bid at or above it that does not win the machine is rented paused (outbid), as Vast does.
- destroying twice is a 404 `no_such_instance` (the instance no longer exists).
"""

from __future__ import annotations

from typing import Any

from emulator import billing, priority
from emulator.bodies import BulkManageBody, CreateInstanceBody, ManageInstanceBody
from emulator.errors import (
    InvalidArgs,
    InvalidPrice,
    LabelTooLong,
    MissingBilling,
    NoSuchAsk,
    NoSuchInstance,
    NotFound,
)
from emulator.filters import compare_keys, matches, sort_key_of, sort_pairs, with_tiebreak
from emulator.identity import IdentityCore
from emulator.lifecycle import BOOTING
from emulator.query import CHARGE_ORDER, CHARGE_ORDER_LATEST, ChargesQuery, InstanceListQuery, SearchQuery
from emulator.results import (
    BulkDestroyResult,
    ChargeLine,
    ChargePage,
    InstancePage,
    OfferQuote,
    SearchResult,
    UserView,
)
from emulator.state import Account, Instance, RaceRule
from emulator.tokens import encode_token
from emulator.views import instance_row, offer_row

MAX_IMAGE = 1024
MAX_LABEL = 256
MIN_DISK_GB = 8.0
MIN_PRICE, MAX_PRICE = 0.001, 128.0


class ApiOperations(IdentityCore):
    """What an API key can ask of the market."""

    def gpu_names(self) -> list[str]:
        with self.lock:
            names = {o.gpu_name for o in self.state.offers.values()}
            names.update(i.offer.gpu_name for i in self.state.instances.values())
            return sorted(names)

    def current_user(self, account: Account) -> UserView:
        with self.lock:
            self._sync()
            return UserView(account=account, balance=self._balance(account.id))

    def search_offers(self, account: Account, query: SearchQuery) -> SearchResult:
        """Vast lists only what is on the market: rented offers (by anyone) never appear, and `rentable=true`
        applies when the caller says nothing about it."""
        with self.lock:
            now = self._sync()
            if query.ignored and self.config.strict_search:
                raise InvalidArgs(f"search: unknown field(s) {', '.join(query.ignored)}")
            is_bid = query.offer_type == "bid"
            storage = billing.dec(query.allocated_storage)
            hits: list[tuple[dict[str, Any], OfferQuote]] = []
            bid_held = {i.offer.id for i in self._live() if i.is_bid}
            demanded = {d.offer_id for d in self.state.demand.values()}
            for offer in self.state.offers.values():
                if offer.id in self.state.taken:
                    continue
                if query.applies_rentable and not offer.rentable:
                    continue
                if offer.disk_space < query.allocated_storage:
                    continue  # cannot hold the storage being priced
                # A machine held only by bids stays on the market: an on-demand rent outranks them, and a bid
                # search prices it at what would win it now (a step above the highest bid holding it).
                min_bid = offer.min_bid
                if offer.id in bid_held or offer.id in demanded:
                    winning = priority.winning_bid(self.state, offer.id, now)
                    if winning is None:
                        continue  # rented on demand by someone else
                    min_bid = winning
                quote = OfferQuote(offer=offer, dph_base=min_bid if is_bid else offer.dph_base,
                                   allocated_storage=storage, is_bid=is_bid, listed_since=self.state.seeded_at,
                                   min_bid=min_bid)
                row = offer_row(quote, now)
                if matches(row, query.conditions):
                    hits.append((row, quote))
            ordered = sort_pairs(hits, with_tiebreak(query.order))
            limit = query.limit or self.config.default_search_limit
            return SearchResult(quotes=[q for _, q in ordered[:limit]], now=now, ignored=query.ignored)

    def create_instance(self, account: Account, offer_id: int, body: CreateInstanceBody) -> Instance:
        image = body.image or (f"vastai/template:{body.template_hash_id}" if body.template_hash_id else None)
        if not image:
            raise InvalidArgs("image is required (or a template_hash_id)")
        if len(image) > MAX_IMAGE:
            raise InvalidArgs(f"image is {len(image)} characters; the limit is {MAX_IMAGE}")
        if body.label is not None and len(body.label) > MAX_LABEL:
            raise InvalidArgs(f"label is {len(body.label)} characters; the limit is {MAX_LABEL}")
        if not body.disk >= MIN_DISK_GB:
            raise InvalidArgs(f"disk must be at least {MIN_DISK_GB:g} GB; got {body.disk:g}")
        if body.price is not None and not MIN_PRICE <= body.price <= MAX_PRICE:
            raise InvalidPrice(f"price must be between {MIN_PRICE} and {MAX_PRICE:g} $/h; got {body.price:g}")
        with self.lock:
            now = self._sync()
            offer = self.state.offers.get(offer_id)
            if offer is None or not offer.rentable or priority.held_on_demand(self.state, offer_id, now):
                raise NoSuchAsk(offer_id)
            if body.disk > offer.disk_space:
                raise InvalidArgs(f"disk {body.disk:g} GB is more than the {offer.disk_space:g} GB offer "
                                  f"{offer_id} has")
            price = billing.dec(body.price) if body.price is not None else None
            if price is not None and price < offer.min_bid:
                raise InvalidPrice(f"bid {price} $/h is below the offer's min_bid {offer.min_bid} $/h")
            if self._balance(account.id) <= 0:
                raise MissingBilling("your account has no credit left: add credit to rent instances")
            race = self._take_race(offer_id)
            if race is not None and race.mode == "reject":
                self.state.taken[offer_id] = None
                self._touch()
                raise NoSuchAsk(offer_id)
            inst_id = self.state.next_instance_id
            self.state.next_instance_id += 1
            inst = Instance(
                id=inst_id, account_id=account.id, offer=offer.model_copy(),
                dph_base=price if price is not None else offer.dph_base, is_bid=price is not None,
                disk=billing.dec(body.disk), image=image, label=body.label,
                extra_env=[(str(k), "" if v is None else str(v)) for k, v in (body.env or {}).items()],
                onstart=body.onstart, runtype=body.runtype, template_hash_id=body.template_hash_id,
                created_at=now, ssh_port=10_000 + inst_id % 50_000,
            )
            if price is None:  # an on-demand rent holds the machine; bids only compete for it
                self.state.taken[offer_id] = inst_id
            provision = self.faults.pick("provision")
            if provision is not None:
                inst.fault = "stuck_loading" if provision.outcome == "stuck_loading" else "exit_on_start"
                inst.fault_msg = provision.status_msg
            if race is not None:  # late: accepted, but the machine went to the other renter
                inst.fault = "exit_on_start"
                inst.fault_msg = "Error: machine no longer available: it was rented by another client"
                self.state.taken[offer_id] = None
            self.state.instances[inst_id] = inst
            self._boot(inst, now, first=True)
            self._rebalance(offer_id, now)  # a bid that does not win starts outbid; an on-demand rent outbids
            self._touch()
            return inst.model_copy()

    def _take_race(self, offer_id: int) -> RaceRule | None:
        for i, rule in enumerate(self.state.races):
            if rule.offer_id == offer_id:
                return self.state.races.pop(i)
        for i, rule in enumerate(self.state.races):
            if rule.offer_id is None:
                return self.state.races.pop(i)
        return None

    def _own(self, account: Account, instance_id: int) -> Instance:
        inst = self.state.instances.get(instance_id)
        if inst is None or inst.account_id != account.id or inst.destroyed_at is not None:
            raise NoSuchInstance(instance_id)
        return inst

    def list_instances(self, account: Account, query: InstanceListQuery) -> InstancePage:
        with self.lock:
            now = self._sync()
            mine = [i for i in self._live() if i.account_id == account.id]
            hits = sort_pairs([(row, i) for i in mine if matches(row := instance_row(i, now), query.conditions)],
                              query.order)
            found = len(hits)
            if query.after is not None:
                after = query.after
                hits = [(r, i) for r, i in hits if compare_keys(sort_key_of(r, query.order), after, query.order) > 0]
            page = hits[: query.limit]
            more = len(hits) > len(page)
            token = encode_token(query.order, sort_key_of(page[-1][0], query.order)) if more and page else None
            counts: dict[str, int] = {}
            for inst in mine:
                counts[inst.label or ""] = counts.get(inst.label or "", 0) + 1
            return InstancePage(instances=[i.model_copy() for _, i in page], now=now, found=found,
                                total=len(mine), label_counts=counts, next_token=token,
                                select_cols=query.select_cols)

    def all_instances(self, account: Account) -> tuple[list[Instance], float]:
        with self.lock:
            now = self._sync()
            return sorted((i.model_copy() for i in self._live() if i.account_id == account.id),
                          key=lambda i: i.id), now

    def show_instance(self, account: Account, instance_id: int) -> tuple[Instance | None, float]:
        """Vast answers a missing (or someone else's) instance with 200 `{"instances": null}`, not a 404."""
        with self.lock:
            now = self._sync()
            inst = self.state.instances.get(instance_id)
            if inst is None or inst.account_id != account.id or inst.destroyed_at is not None:
                return None, now
            return inst.model_copy(), now

    def instance_filters(self, account: Account) -> list[tuple[str, str, str]]:
        with self.lock:
            self._sync()
            combos = {(i.actual_status, i.offer.verification, i.offer.gpu_name)
                      for i in self._live() if i.account_id == account.id}
            return sorted(combos)

    def manage_instance(self, account: Account, instance_id: int, body: ManageInstanceBody) -> None:
        with self.lock:
            now = self._sync()
            inst = self._own(account, instance_id)
            self._manage(account, inst, body, now)
            self._touch()

    def manage_instances(self, account: Account, body: BulkManageBody) -> None:
        with self.lock:
            now = self._sync()
            targets = [self._own(account, i) for i in body.ids]
            for inst in targets:
                self._manage(account, inst, body, now)
            self._touch()

    def _manage(self, account: Account, inst: Instance, body: ManageInstanceBody, now: float) -> None:
        if body.relabel and body.label is not None and len(body.label) > MAX_LABEL:
            raise LabelTooLong(f"label is {len(body.label)} characters; the limit is {MAX_LABEL}")
        starting = body.state == "running" and not (
            inst.intended_status == "running" and inst.actual_status in BOOTING | {"running"})
        if starting and self._balance(account.id) <= 0:
            raise MissingBilling("your account has no credit left: add credit to start instances")
        if body.relabel:
            inst.label = body.label
        if inst.is_bid and body.state is not None:
            # Whether a bid instance runs is the machine's standing: stopping leaves the contest, starting joins
            # it (and waits outbid if it does not win).
            if body.state == "stopped" and (inst.actual_status != "stopped" or inst.intended_status == "running"):
                self._stop(inst)
            elif starting:
                inst.intended_status = "running"
            self._rebalance(inst.offer.id, now)
        elif body.state == "stopped" and inst.actual_status != "stopped":
            self._stop(inst)
        elif starting:
            self._boot(inst, now, first=False)

    def destroy_instance(self, account: Account, instance_id: int) -> None:
        with self.lock:
            now = self._sync()
            inst = self._own(account, instance_id)
            self._destroy(inst, now)
            self._rebalance(inst.offer.id, now)
            self._touch()

    def destroy_instances(self, account: Account, instance_ids: list[int]) -> BulkDestroyResult:
        with self.lock:
            now = self._sync()
            done, missing = [], []
            for instance_id in instance_ids:
                try:
                    inst = self._own(account, instance_id)
                except NoSuchInstance:
                    missing.append(instance_id)
                    continue
                self._destroy(inst, now)
                self._rebalance(inst.offer.id, now)
                done.append(instance_id)
            self._touch()
            return BulkDestroyResult(destroyed=done, not_found=missing)
    def charges(self, account: Account, query: ChargesQuery) -> ChargePage:
        with self.lock:
            self._sync()
            order = CHARGE_ORDER_LATEST if query.latest_first else CHARGE_ORDER
            lines = []
            if query.types is None or "instance" in query.types:
                for d in self.state.charges.values():
                    if d.account_id == account.id and query.day_from <= d.day <= query.day_to and d.alive_seconds > 0:
                        lines.append(ChargeLine(day=d.model_copy(),
                                                instance=self.state.instances[d.instance_id].model_copy()))
            lines.sort(key=lambda line: (line.day.day, line.day.instance_id), reverse=query.latest_first)
            total = len(lines)  # of the whole query, the same on every page
            if query.after is not None:
                after = query.after
                lines = [ln for ln in lines
                         if compare_keys([ln.day.day, ln.day.instance_id], after, order) > 0]
            page = lines[: query.limit]
            token = (encode_token(order, [page[-1].day.day, page[-1].day.instance_id])
                     if len(lines) > len(page) and page else None)
            return ChargePage(lines=page, total=total, next_token=token)

    # Hosting is not emulated: no account hosts machines. These two answer as Vast would a renter, so that
    # `machine_read` and `machine_write` have something to allow and refuse.

    def machines(self, account: Account) -> list[dict[str, Any]]:
        return []

    def unlist_machine(self, account: Account, machine_id: int) -> None:
        raise NotFound(f"Machine {machine_id} not found.")
