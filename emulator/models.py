"""The marketplace: plain state (pydantic, persisted as one JSON document) and `MarketBackend`, which has one
method per API operation and raises the typed errors of `emulator.errors`. No HTTP here.

Time. Everything reads the virtual clock, and every operation first *syncs*: it replays what happened
since the last call, in time order, at the exact instants things happened (an instance finishing its image
pull, an account running out of credit), accruing charges between them. So a test can freeze the clock,
advance it by a day and read bills that are exact to the micro-dollar, and the answers do not depend on
how often anyone polled.

Lifecycle (`actual_status`), with `provision_delay` D:

    rent  -> created --D/4--> loading --3D/4--> running       (D = 0: running at once)
    stop  -> stopped                       (immediately; only storage is billed from then on)
    start -> loading --D--> running        (from stopped / exited / offline ...)
    faults: stuck_loading (never leaves loading), exit_on_start (ends `exited`: the container died,
            or the machine went to someone who rented it a moment earlier)
    credit exhausted -> running instances stop (not destroyed), as a prepaid Vast account does

Decisions where Vast is not documented:
- destroying an instance returns its offer to the market (same id): the machine is free again. A stopped
  instance keeps its offer (its GPUs are still reserved for it, as far as the emulator is concerned).
- renting needs credit > 0 (`missing_billing`), so does starting; a bid below the offer's `min_bid` is an
  `invalid_price`.
- destroying twice is a 404 `no_such_instance` (the instance no longer exists).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from emulator import billing, catalogue
from emulator.bodies import (
    AccountBody,
    BalanceBody,
    BulkManageBody,
    ClockBody,
    ConfigBody,
    CreateInstanceBody,
    ForceStateBody,
    ManageInstanceBody,
    OfferBody,
    RaceBody,
)
from emulator.catalogue import Offer
from emulator.clock import ClockState, VirtualClock
from emulator.errors import (
    AuthError,
    Conflict,
    InvalidArgs,
    InvalidPrice,
    LabelTooLong,
    MissingBilling,
    NoSuchAsk,
    NoSuchInstance,
)
from emulator.faults import FaultBook, RequestLog
from emulator.query import (
    CHARGE_ORDER,
    CHARGE_ORDER_LATEST,
    ChargesQuery,
    InstanceListQuery,
    SearchQuery,
    compare_keys,
    encode_token,
    matches,
    sort_key_of,
    sort_pairs,
    with_tiebreak,
)
from emulator.ratelimit import RateLimiter
from emulator.views import instance_row, offer_row

__all__ = [
    "Account",
    "ChargeDay",
    "ChargeLine",
    "ChargePage",
    "EmulatorConfig",
    "Instance",
    "InstancePage",
    "MarketBackend",
    "MarketState",
    "Offer",
    "OfferQuote",
    "SearchResult",
    "UserView",
    "key_digest",
]

MAX_IMAGE = 1024
MAX_LABEL = 256
MIN_DISK_GB = 8.0
MIN_PRICE, MAX_PRICE = 0.001, 128.0
FIRST_INSTANCE_ID = 21_000_000
FIRST_ACCOUNT_ID = 100_001
FIRST_CUSTOM_OFFER_ID = 9_000_000

Fault = Literal["stuck_loading", "exit_on_start"]
BOOTING = frozenset({"created", "loading"})


def key_digest(api_key: str) -> str:
    """Accounts are found by the SHA-256 of their key: the key itself is never stored, dumped or persisted."""
    return hashlib.sha256(api_key.encode()).hexdigest()


# ------------------------------------------------------------------------------------------------- state


class EmulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provision_delay: float = Field(default=5.0, ge=0)
    rate_limits: bool = False
    latency_ms: int = Field(default=0, ge=0)
    strict_search: bool = False
    default_search_limit: int = Field(default=64, ge=1)


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int
    key_sha256: str = Field(repr=False)
    username: str
    email: str
    credit: Decimal  # all money ever put in; the balance is this minus the charges
    created_at: float


class Instance(BaseModel):
    """A rented instance (a "contract"). `offer` is a snapshot of the ask at rent time."""

    model_config = ConfigDict(extra="forbid")

    id: int
    account_id: int
    offer: Offer
    dph_base: Decimal  # what the GPU costs while running: on-demand price, or the bid
    is_bid: bool
    disk: Decimal  # GB allocated
    image: str
    label: str | None
    extra_env: list[tuple[str, str]]
    onstart: str | None
    runtype: str | None
    template_hash_id: str | None
    created_at: float
    destroyed_at: float | None = None
    intended_status: Literal["running", "stopped"] = "running"
    actual_status: str = "created"
    status_msg: str = ""
    transition_at: float | None = None
    transition_to: Literal["loading", "running"] | None = None
    ready_at: float | None = None
    fault: Fault | None = None
    fault_msg: str | None = None
    running_since: float | None = None
    ssh_port: int

    @property
    def storage_per_hour(self) -> Decimal:
        return billing.storage_per_hour(self.offer.storage_cost, self.disk)

    @property
    def dph_total(self) -> Decimal:
        return self.dph_base + self.storage_per_hour

    @property
    def hourly_rate(self) -> Decimal:
        """What the instance costs right now: storage always, the GPU only while running."""
        return self.storage_per_hour + (self.dph_base if self.actual_status == "running" else Decimal(0))


class ChargeDay(BaseModel):
    """One instance's billable time within one UTC day; amounts are derived (see billing.py)."""

    model_config = ConfigDict(extra="forbid")

    instance_id: int
    account_id: int
    day: int
    first: float
    last: float
    alive_seconds: Decimal = Decimal(0)
    running_seconds: Decimal = Decimal(0)


class RaceRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer_id: int | None
    mode: Literal["reject", "late"]


class MarketState(BaseModel):
    """Everything a restart must keep. Serialised whole to the state file."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    seed: int
    catalogue_size: int
    seeded_at: float
    offers: dict[int, Offer]
    taken: dict[int, int | None] = Field(default_factory=dict)  # offer id -> our instance id, None: someone else
    accounts: dict[int, Account] = Field(default_factory=dict)
    instances: dict[int, Instance] = Field(default_factory=dict)
    charges: dict[str, ChargeDay] = Field(default_factory=dict)  # "<instance id>:<day>"
    races: list[RaceRule] = Field(default_factory=list)
    clock: ClockState = Field(default_factory=ClockState)
    config: EmulatorConfig = Field(default_factory=EmulatorConfig)
    next_instance_id: int = FIRST_INSTANCE_ID
    next_account_id: int = FIRST_ACCOUNT_ID
    next_offer_id: int = FIRST_CUSTOM_OFFER_ID
    billed_until: float = 0.0


# ------------------------------------------------------------------------------------- operation results


class OfferQuote(BaseModel):
    """An offer as one search prices it: bid or on-demand base, plus storage for `allocated_storage`."""

    model_config = ConfigDict(frozen=True)

    offer: Offer
    dph_base: Decimal
    allocated_storage: Decimal
    is_bid: bool
    listed_since: float

    @property
    def storage_per_hour(self) -> Decimal:
        return billing.storage_per_hour(self.offer.storage_cost, self.allocated_storage)

    @property
    def dph_total(self) -> Decimal:
        return self.dph_base + self.storage_per_hour


class SearchResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    quotes: list[OfferQuote]
    now: float
    ignored: list[str]


class UserView(BaseModel):
    model_config = ConfigDict(frozen=True)

    account: Account
    balance: Decimal


class InstancePage(BaseModel):
    model_config = ConfigDict(frozen=True)

    instances: list[Instance]
    now: float
    found: int
    total: int
    label_counts: dict[str, int]
    next_token: str | None
    select_cols: list[str] | None


class ChargeLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    day: ChargeDay
    instance: Instance


class ChargePage(BaseModel):
    model_config = ConfigDict(frozen=True)

    lines: list[ChargeLine]
    total: int
    next_token: str | None


class BulkDestroyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    destroyed: list[int]
    not_found: list[int]


# ------------------------------------------------------------------------------------------------ backend


def _row_amount(day: ChargeDay, inst: Instance) -> Decimal:
    return (billing.accrued(inst.dph_base, day.running_seconds)
            + billing.accrued(inst.storage_per_hour, day.alive_seconds))


class MarketBackend:
    """The marketplace behind the API. Thread-safe: every public method holds one re-entrant lock."""

    def __init__(self, state: MarketState, *, clock: VirtualClock | None = None,
                 defaults: EmulatorConfig | None = None) -> None:
        self.state = state
        self.clock = clock if clock is not None else VirtualClock(state.clock)
        self.defaults = (defaults or state.config).model_copy()
        self.lock = threading.RLock()
        self.faults = FaultBook(seed=state.seed)
        self.limiter = RateLimiter()
        self.requests = RequestLog()
        self.version = 0  # bumped on every mutation; the persister saves when it changes
        self._by_key = {a.key_sha256: a.id for a in state.accounts.values()}
        self._spent: dict[int, Decimal] = {}
        self._recount()

    @classmethod
    def fresh(cls, *, seed: int = 0, offers: int = catalogue.DEFAULT_OFFERS, config: EmulatorConfig | None = None,
              clock: VirtualClock | None = None) -> MarketBackend:
        clock = clock if clock is not None else VirtualClock()
        config = config or EmulatorConfig()
        now = clock.now()
        state = MarketState(seed=seed, catalogue_size=offers, seeded_at=now,
                            offers={o.id: o for o in catalogue.generate(seed, offers)},
                            config=config.model_copy(), clock=clock.snapshot(), billed_until=now)
        return cls(state, clock=clock, defaults=config)

    @property
    def config(self) -> EmulatorConfig:
        return self.state.config

    def _touch(self) -> None:
        self.version += 1

    def snapshot_json(self) -> str:
        """The whole state as JSON (for the state file): consistent, taken under the lock."""
        with self.lock:
            self.state.clock = self.clock.snapshot()
            return self.state.model_dump_json()

    # ------------------------------------------------------------------------------ time and money

    def _live(self) -> list[Instance]:
        return [i for i in self.state.instances.values() if i.destroyed_at is None]

    def balance(self, account_id: int) -> Decimal:
        with self.lock:
            self._sync()
            return self._balance(account_id)

    def _balance(self, account_id: int) -> Decimal:
        return self.state.accounts[account_id].credit - self._spent.get(account_id, Decimal(0))

    def _recount(self) -> None:
        """Rebuild the per-account totals of the charge rows (kept incrementally by `_accrue`)."""
        spent: dict[int, Decimal] = {}
        for d in self.state.charges.values():
            amount = _row_amount(d, self.state.instances[d.instance_id])
            spent[d.account_id] = spent.get(d.account_id, Decimal(0)) + amount
        self._spent = spent

    def _sync(self) -> float:
        """Bring the market up to the clock's now: transitions and credit exhaustion at their own instants,
        charges accrued between them. Returns now."""
        now = self.clock.now()
        s = self.state
        if now <= s.billed_until:
            return s.billed_until
        live = self._live()
        t = s.billed_until
        stalled = 0
        while live and t < now:
            t_next = now
            for inst in live:
                if inst.transition_at is not None and inst.transition_at < t_next:
                    t_next = max(inst.transition_at, t)
            exhausted: list[int] = []
            for account_id in sorted({i.account_id for i in live if i.actual_status == "running"}):
                group = [i for i in live if i.account_id == account_id]
                rate = sum((i.hourly_rate for i in group), Decimal(0))
                left = self._balance(account_id)
                t_zero = t + float(left / rate * billing.SECONDS_PER_HOUR) if left > 0 else t
                if t_zero < t_next:
                    t_next, exhausted = t_zero, [account_id]
                elif t_zero == t_next:
                    exhausted.append(account_id)
            stalled = stalled + 1 if t_next <= t else 0
            if stalled > len(live) + 2:  # every event at t has been handled; another lap would be a hang
                raise RuntimeError(f"billing replay made no progress at t={t}")
            self._accrue(live, t, t_next)
            t = t_next
            for inst in live:
                if inst.transition_at is not None and inst.transition_at <= t:
                    self._transition(inst, t)
            for account_id in exhausted:
                for inst in live:
                    if inst.account_id == account_id and inst.actual_status == "running":
                        self._stop(inst, "Stopped: account credit exhausted")
        s.billed_until = now
        if live:
            self._touch()
        return now

    def _accrue(self, live: Iterable[Instance], start: float, end: float) -> None:
        if end <= start:
            return
        for inst in live:
            running = inst.actual_status == "running"
            for day, a, b in billing.split_by_day(start, end):
                key = f"{inst.id}:{day}"
                row = self.state.charges.get(key)
                if row is None:
                    row = self.state.charges[key] = ChargeDay(instance_id=inst.id, account_id=inst.account_id,
                                                              day=day, first=a, last=b)
                before = _row_amount(row, inst)
                seconds = billing.seconds_between(a, b)
                row.alive_seconds += seconds
                if running:
                    row.running_seconds += seconds
                row.first, row.last = min(row.first, a), max(row.last, b)
                # Exact: row amounts are 6-place decimals, far inside Decimal's 28 digits.
                self._spent[inst.account_id] = (self._spent.get(inst.account_id, Decimal(0))
                                                + _row_amount(row, inst) - before)

    # ---------------------------------------------------------------------------------- lifecycle

    def _boot(self, inst: Instance, t: float, *, first: bool) -> None:
        inst.intended_status = "running"
        delay = self.config.provision_delay
        if delay <= 0:
            self._boot_done(inst, t)
            return
        inst.ready_at = t + delay
        if first:
            inst.actual_status, inst.status_msg = "created", "Creating container"
            inst.transition_at, inst.transition_to = t + delay / 4, "loading"
        else:
            self._loading(inst)

    def _loading(self, inst: Instance) -> None:
        inst.actual_status, inst.status_msg = "loading", f"Pulling image {inst.image}"
        if inst.fault == "stuck_loading":
            inst.transition_at, inst.transition_to = None, None
        else:
            inst.transition_at, inst.transition_to = inst.ready_at, "running"

    def _transition(self, inst: Instance, t: float) -> None:
        target = inst.transition_to
        inst.transition_at, inst.transition_to = None, None
        if target == "loading":
            self._loading(inst)
        elif target == "running":
            self._boot_done(inst, t)

    def _boot_done(self, inst: Instance, t: float) -> None:
        inst.transition_at, inst.transition_to = None, None
        if inst.fault == "stuck_loading":
            inst.actual_status, inst.status_msg = "loading", f"Pulling image {inst.image}"
        elif inst.fault == "exit_on_start":
            inst.actual_status = "exited"
            inst.status_msg = inst.fault_msg or "Error response from daemon: container exited with code 1"
            inst.running_since = None
        elif self._balance(inst.account_id) <= 0:
            self._stop(inst, "Stopped: account credit exhausted")
        else:
            inst.actual_status, inst.status_msg = "running", f"success, running {inst.image}"
            inst.running_since = t

    def _stop(self, inst: Instance, msg: str = "Stopped") -> None:
        inst.intended_status, inst.actual_status, inst.status_msg = "stopped", "stopped", msg
        inst.transition_at = inst.transition_to = inst.ready_at = None
        inst.running_since = None

    # ----------------------------------------------------------------------------- API operations

    def gpu_names(self) -> list[str]:
        with self.lock:
            names = {o.gpu_name for o in self.state.offers.values()}
            names.update(i.offer.gpu_name for i in self.state.instances.values())
            return sorted(names)

    def authenticate(self, api_key: str | None) -> Account:
        if not api_key:
            raise AuthError()
        with self.lock:
            account_id = self._by_key.get(key_digest(api_key))
            if account_id is None:
                raise AuthError()
            return self.state.accounts[account_id]

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
            for offer in self.state.offers.values():
                if offer.id in self.state.taken:
                    continue
                if query.applies_rentable and not offer.rentable:
                    continue
                if offer.disk_space < query.allocated_storage:
                    continue  # cannot hold the storage being priced
                quote = OfferQuote(offer=offer, dph_base=offer.min_bid if is_bid else offer.dph_base,
                                   allocated_storage=storage, is_bid=is_bid, listed_since=self.state.seeded_at)
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
            if offer is None or offer_id in self.state.taken or not offer.rentable:
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
        if body.state == "stopped" and inst.actual_status != "stopped":
            self._stop(inst)
        elif starting:
            self._boot(inst, now, first=False)

    def destroy_instance(self, account: Account, instance_id: int) -> None:
        with self.lock:
            now = self._sync()
            self._destroy(self._own(account, instance_id), now)
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
                done.append(instance_id)
            self._touch()
            return BulkDestroyResult(destroyed=done, not_found=missing)

    def _destroy(self, inst: Instance, now: float) -> None:
        inst.destroyed_at = now
        inst.transition_at = inst.transition_to = None
        inst.running_since = None
        if self.state.taken.get(inst.offer.id, -1) == inst.id:
            del self.state.taken[inst.offer.id]  # the machine is free: its offer is back on the market

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

    # ------------------------------------------------------------------------------ control plane

    def reset(self, *, seed: int | None = None, offers: int | None = None) -> None:
        """Back to a fresh market: new catalogue, no accounts, clock following real time, default config."""
        with self.lock:
            now = self.clock.reset()
            seed = self.state.seed if seed is None else seed
            count = self.state.catalogue_size if offers is None else offers
            self.state = MarketState(seed=seed, catalogue_size=count, seeded_at=now,
                                     offers={o.id: o for o in catalogue.generate(seed, count)},
                                     config=self.defaults.model_copy(), clock=self.clock.snapshot(),
                                     billed_until=now)
            self._by_key = {}
            self._spent = {}
            self.faults = FaultBook(seed=seed)
            self.limiter.reset()
            self.requests.clear()
            self._touch()

    def reseed(self, *, seed: int, offers: int | None = None) -> int:
        """A new catalogue; offers held by instances stay (their renters still have them)."""
        with self.lock:
            now = self._sync()
            count = self.state.catalogue_size if offers is None else offers
            held = {oid: self.state.offers[oid] for oid in self.state.taken if oid in self.state.offers}
            fresh = {o.id: o for o in catalogue.generate(seed, count) if o.id not in held}
            self.state.offers = {**fresh, **held}
            self.state.seed, self.state.catalogue_size, self.state.seeded_at = seed, count, now
            self._touch()
            return len(fresh)

    def add_offer(self, body: OfferBody) -> Offer:
        with self.lock:
            self._sync()
            offer_id = body.id
            if offer_id is None:
                while self.state.next_offer_id in self.state.offers:
                    self.state.next_offer_id += 1
                offer_id = self.state.next_offer_id
                self.state.next_offer_id += 1
            elif offer_id in self.state.offers:
                raise Conflict(f"offer {offer_id} already exists")
            offer = catalogue.custom_offer(
                offer_id, 80_000 + offer_id % 10_000, gpu_name=body.gpu_name, num_gpus=body.num_gpus,
                dph_base=body.dph_base, storage_cost=body.storage_cost, reliability=body.reliability,
                verification=body.verification, geolocation=body.geolocation, disk_space=body.disk_space,
                rentable=body.rentable, external=body.external)
            self.state.offers[offer.id] = offer
            self._touch()
            return offer

    def create_account(self, body: AccountBody) -> UserView:
        with self.lock:
            now = self._sync()
            digest = key_digest(body.api_key)
            if digest in self._by_key:
                raise Conflict("an account with this API key already exists")
            account_id = self.state.next_account_id
            self.state.next_account_id += 1
            username = body.username or f"user{account_id}"
            account = Account(id=account_id, key_sha256=digest, username=username,
                              email=body.email or f"{username}@example.com", credit=body.balance, created_at=now)
            self.state.accounts[account_id] = account
            self._by_key[digest] = account_id
            self._touch()
            return UserView(account=account, balance=account.credit)

    def accounts(self) -> list[UserView]:
        with self.lock:
            self._sync()
            return [UserView(account=a, balance=self._balance(a.id)) for a in self.state.accounts.values()]

    def set_balance(self, account_id: int, body: BalanceBody) -> UserView:
        with self.lock:
            self._sync()
            account = self.state.accounts.get(account_id)
            if account is None:
                raise InvalidArgs(f"no account {account_id}", status=404, code="not_found")
            if body.add is not None:
                account.credit += body.add
            elif body.balance is not None:
                account.credit += body.balance - self._balance(account_id)
            self._touch()
            return UserView(account=account, balance=self._balance(account_id))

    def update_clock(self, body: ClockBody) -> float:
        with self.lock:
            self._sync()
            if body.set is not None:
                when = _epoch(body.set)
                if when < self.clock.now() and self._live():
                    raise InvalidArgs("the clock cannot go back while instances exist (billing only moves "
                                      "forward); destroy them or reset first")
                self.clock.set(when)
                if when < self.state.billed_until:
                    self.state.billed_until = when
            if body.freeze is True:
                self.clock.freeze()
            elif body.freeze is False:
                self.clock.unfreeze()
            if body.advance:
                self.clock.advance(body.advance)
            now = self._sync()
            self._touch()
            return now

    def configure(self, body: ConfigBody) -> EmulatorConfig:
        with self.lock:
            self._sync()
            self.state.config = self.state.config.model_copy(update=body.model_dump(exclude_none=True))
            self._touch()
            return self.state.config.model_copy()

    def force_state(self, instance_id: int, body: ForceStateBody) -> Instance:
        """Put an instance into a state now, as a host failure or a stuck pull would."""
        with self.lock:
            now = self._sync()
            inst = self.state.instances.get(instance_id)
            if inst is None or inst.destroyed_at is not None:
                raise NoSuchInstance(instance_id)
            inst.transition_at = inst.transition_to = None
            status = body.actual_status
            if status == "loading":
                inst.intended_status = "running"
                inst.fault = "stuck_loading" if body.stuck else None
                inst.ready_at = now + self.config.provision_delay
                self._loading(inst)
                if not body.stuck and self.config.provision_delay <= 0:
                    self._boot_done(inst, now)
            elif status == "running":
                inst.fault = None
                inst.intended_status, inst.actual_status = "running", "running"
                inst.status_msg, inst.running_since = f"success, running {inst.image}", now
            elif status == "stopped":
                self._stop(inst)
            else:
                inst.actual_status = status
                inst.status_msg = {"exited": "Error response from daemon: container exited with code 1",
                                   "offline": "Host offline", "unknown": "No heartbeat from host"}.get(status, status)
                inst.running_since = None
            if body.status_msg is not None:
                inst.status_msg = body.status_msg
            self._touch()
            return inst.model_copy()

    def add_race(self, body: RaceBody) -> list[RaceRule]:
        with self.lock:
            self.state.races.append(RaceRule(offer_id=body.offer_id, mode=body.mode))
            self._touch()
            return [r.model_copy() for r in self.state.races]

    def races(self) -> list[RaceRule]:
        with self.lock:
            return [r.model_copy() for r in self.state.races]

    def clear_races(self) -> None:
        with self.lock:
            self.state.races.clear()
            self._touch()

    def dump(self) -> MarketState:
        with self.lock:
            self._sync()
            self.state.clock = self.clock.snapshot()
            return self.state.model_copy(deep=True)


EARLIEST, LATEST = 946_684_800.0, 4_102_444_800.0  # 2000-01-01, 2100-01-01


def _epoch(value: float | str) -> float:
    if isinstance(value, float | int):
        when = float(value)
    else:
        try:
            when = float(value)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidArgs(f"clock set must be epoch seconds or ISO-8601; got {value!r}") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            when = parsed.timestamp()
    if not EARLIEST <= when <= LATEST:
        raise InvalidArgs("clock set must be between 2000-01-01 and 2100-01-01")
    return when
