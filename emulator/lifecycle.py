"""Time and money: how the market moves between requests. `MarketCore` holds the state, the virtual clock and
the one lock, and *syncs* before every operation: it replays what happened since the last call, in time
order, at the exact instants things happened (an instance finishing its image pull, an account running out
of credit), accruing charges between them. So a test can freeze the clock, advance it by a day and read
bills that are exact to the micro-dollar, and the answers do not depend on how often anyone polled.

Lifecycle (`actual_status`), with `provision_delay` D:

    rent  -> created --D/4--> loading --3D/4--> running       (D = 0: running at once)
    stop  -> stopped                       (immediately; only storage is billed from then on)
    start -> loading --D--> running        (from stopped / exited / offline ...)
    faults: stuck_loading (never leaves loading), exit_on_start (ends `exited`: the container died,
            or the machine went to someone who rented it a moment earlier)
    credit exhausted -> running instances stop (not destroyed), as a prepaid Vast account does
    outbid -> stopped (an interruptible instance loses its machine: `emulator.priority`), and back through
              loading to running when its bid wins again

Destroying an instance returns its offer to the market (same id): the machine is free again. A stopped
instance keeps its offer (its GPUs are still reserved for it, as far as the emulator is concerned).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from decimal import Decimal

from emulator import billing, priority
from emulator.clock import VirtualClock
from emulator.faults import FaultBook, RequestLog
from emulator.ratelimit import RateLimiter
from emulator.state import ApiKey, ChargeDay, EmulatorConfig, Instance, MarketState

BOOTING = frozenset({"created", "loading"})


def _row_amount(day: ChargeDay, inst: Instance) -> Decimal:
    return (billing.gpu_accrued(day.priced_running, day.running_seconds, inst.dph_base)
            + billing.accrued(inst.storage_per_hour, day.alive_seconds))


class MarketCore:
    """State, clock and lock, and the replay that brings the market up to the clock's now. The API and
    control operations (`emulator.operations`, `emulator.control`) build on it. Thread-safe: every public
    method holds one re-entrant lock."""

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
        self._by_key: dict[str, int] = {}  # key digest -> ApiKey id: one dict lookup per request
        self._spent: dict[int, Decimal] = {}
        self._index_keys()
        self._recount()

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

    def _index_keys(self) -> None:
        """Rebuild the digest index of live keys; an account's main key from a state file written before keys
        were records of their own becomes its primary `ApiKey`."""
        s = self.state
        for account in s.accounts.values():
            if account.key_sha256 is not None:
                key_id = s.next_key_id
                s.next_key_id += 1
                s.api_keys[key_id] = ApiKey(id=key_id, key_sha256=account.key_sha256, account_id=account.id,
                                            user_id=account.id, name="primary", key_type="api", primary=True,
                                            created_at=account.created_at)
                account.key_sha256 = None
        self._by_key = {k.key_sha256: k.id for k in s.api_keys.values() if k.deleted_at is None}

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
            demand_change = priority.next_change(s, t)
            if demand_change is not None and demand_change < t_next:
                t_next = demand_change
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
            for offer_id in priority.changed_at(s, t):
                self._rebalance(offer_id, t)
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
                    rate = str(inst.dph_base)
                    if row.running_seconds and not row.priced_running:  # a row from an older state file
                        row.priced_running[rate] = row.running_seconds
                    row.running_seconds += seconds
                    row.priced_running[rate] = row.priced_running.get(rate, Decimal(0)) + seconds
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
        inst.outbid_since = None

    # ------------------------------------------------------------------------ interruptible instances

    def _rebalance(self, offer_id: int, t: float) -> None:
        """Apply the machine's standing at t (`emulator.priority`): the winning bid runs (resuming if it was
        paused), every other contending bid instance is paused."""
        top = priority.winner(self.state, offer_id, t)
        for inst in priority.contending(self.state, offer_id):
            if top is not None and top.instance_id == inst.id:
                if inst.outbid_since is not None or inst.actual_status == "stopped":
                    inst.outbid_since = None
                    self._boot(inst, t, first=False)
            elif inst.outbid_since is None:
                self._outbid(inst, t)

    def _outbid(self, inst: Instance, t: float) -> None:
        # The owner still wants it running (`intended_status` stays): the market paused it, and resumes it.
        inst.outbid_since = t
        inst.actual_status, inst.status_msg = "stopped", priority.OUTBID_MSG
        inst.transition_at = inst.transition_to = inst.ready_at = None
        inst.running_since = None

    def _destroy(self, inst: Instance, now: float) -> None:
        inst.destroyed_at = now
        inst.transition_at = inst.transition_to = None
        inst.running_since = None
        if self.state.taken.get(inst.offer.id, -1) == inst.id:
            del self.state.taken[inst.offer.id]  # the machine is free: its offer is back on the market
