"""Budgets on actual spend: the windows a budget covers, what a team has spent in one (Vast's charges plus what
its instances accrued since), what it has committed to the window's end, and the prepaid credit plan. Pure
Decimal math on typed models, shared by the `vastai:TeamSpend` provider, the policy pack, the guard and
`vastguard budget allocate`, so a preview, a guard pass and an allocation judge the same number.

Windows. A daily budget covers a day, a monthly budget a calendar month, in the team's time zone (UTC unless its
team file says otherwise). Vast cuts charges at UTC midnights (one row per instance and UTC day), so a window
in UTC is summed exactly; a window in another time zone starts inside a UTC day, and that day's rows are
apportioned: storage accrues evenly over a row (an instance bills its disk from creation to destruction, in
every state), the GPU at most at its rate over the overlap and at most its amount. Such a sum is an upper bound
(`exact=False`): a budget judged on it never lets through more than the budget.

Unknown is never 0: a row or an instance whose price Vast did not give makes the spend unknown, and callers
fail closed on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict

from fleet.costs import CENT, storage_hourly

WindowKind = Literal["day", "month"]
WINDOW_KINDS: tuple[WindowKind, ...] = ("day", "month")
SECONDS_PER_HOUR = Decimal(3600)
ZERO = Decimal(0)


class UnknownTimezoneError(ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    """An IANA time zone (`UTC`, `Europe/Berlin`). A lookup in the system's time-zone database (static data,
    like a module import), so this stays a pure function of its argument."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimezoneError(
            f"{name!r} is not an IANA time zone: use UTC or a name like Europe/Berlin or America/New_York") from None


class Window(BaseModel):
    """One budget window: [start, end) in UTC, named by its local day or month in the team's time zone."""

    model_config = ConfigDict(frozen=True)

    kind: WindowKind
    timezone: str
    start: datetime
    end: datetime
    label: str  # 2026-11-05 or 2026-11, in the team's time zone

    @property
    def key(self) -> str:
        """`day:2026-11-05@UTC`: names the window wherever it is recorded (labels, the guard's log)."""
        return f"{self.kind}:{self.label}@{self.timezone}"

    @property
    def end_text(self) -> str:
        """How a message says the window's end: `24:00 UTC`, `the end of 2026-11 (UTC)`."""
        return f"24:00 {self.timezone}" if self.kind == "day" else f"the end of {self.label} ({self.timezone})"

    @property
    def noun(self) -> str:
        return "today" if self.kind == "day" else "this month"

    def hours_left(self, at: datetime) -> Decimal:
        left = (self.end - max(at, self.start)).total_seconds()
        return max(ZERO, Decimal(str(left)) / SECONDS_PER_HOUR)

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


def window(kind: WindowKind, at: datetime, timezone: str = "UTC") -> Window:
    """The day or calendar month containing `at`, in `timezone`."""
    tz = zone(timezone)
    local = at.astimezone(tz)
    if kind == "day":
        first = datetime(local.year, local.month, local.day, tzinfo=tz)
        after = datetime.combine(first.date() + timedelta(days=1), datetime.min.time(), tzinfo=tz)
        label = first.strftime("%Y-%m-%d")
    else:
        first = datetime(local.year, local.month, 1, tzinfo=tz)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        after = datetime(year, month, 1, tzinfo=tz)
        label = first.strftime("%Y-%m")
    return Window(kind=kind, timezone=timezone, start=first.astimezone(UTC), end=after.astimezone(UTC), label=label)


def parse_window_key(key: str) -> tuple[WindowKind, str, str] | None:
    """(kind, label, timezone) of a `Window.key`, or None when it is not one."""
    kind, _, rest = key.partition(":")
    label, _, timezone = rest.partition("@")
    if kind not in WINDOW_KINDS or not label or not timezone:
        return None
    return kind, label, timezone


# --- what a team spent --------------------------------------------------------------------------------------------


class ChargeRow(BaseModel):
    """One of Vast's charges (an instance's UTC day), with what apportioning it needs: its amount, its first and
    last billed instants (epoch seconds), and its GPU and storage items. None: Vast did not say."""

    model_config = ConfigDict(frozen=True)

    instance_id: int | None
    amount: Decimal
    start: float | None = None
    end: float | None = None
    gpu: Decimal | None = None
    gpu_rate: Decimal | None = None  # $/h
    disk: Decimal | None = None


class Share(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: Decimal
    exact: bool


def row_share(row: ChargeRow, start: float, end: float) -> Share:
    """The part of a charge that falls in [start, end): all of it, none of it, or (a row the window cuts) its
    storage pro rata and its GPU at most at its rate over the overlap; anything else in it counts whole."""
    if row.start is None or row.end is None:
        return Share(amount=row.amount, exact=False)
    if row.start >= start and row.end <= end:
        return Share(amount=row.amount, exact=True)
    if row.end <= start or row.start >= end:
        return Share(amount=ZERO, exact=True)
    span = Decimal(str(row.end)) - Decimal(str(row.start))
    overlap = Decimal(str(min(end, row.end))) - Decimal(str(max(start, row.start)))
    disk = row.disk or ZERO
    gpu = row.gpu if row.gpu is not None else row.amount - disk
    other = row.amount - gpu - disk
    disk_part = disk * overlap / span if span > 0 else disk
    # The GPU ran at most the whole overlap; a row whose GPU amount its rate cannot explain counts whole.
    rate = row.gpu_rate
    bounded = rate is not None and gpu <= rate * span / SECONDS_PER_HOUR
    gpu_part = min(gpu, rate * overlap / SECONDS_PER_HOUR) if bounded and rate is not None else gpu
    return Share(amount=disk_part + gpu_part + max(ZERO, other), exact=False)


class LiveRate(BaseModel):
    """What one live instance costs right now, for the accrual since its last charge and the storage it commits
    to: `hourly` ($/h now: its `dph_total` while running, its storage otherwise) and `storage` ($/h of its disk).
    None: unknown."""

    model_config = ConfigDict(frozen=True)

    instance_id: int
    running: bool
    hourly: Decimal | None
    storage: Decimal | None
    since: float | None = None  # when it was rented (Vast's start_date), if known


def live_rate(*, instance_id: int, running: bool, dph_total: float | Decimal | None,
              storage_cost: float | Decimal | None, disk_gb: float | Decimal | None,
              since: float | None = None) -> LiveRate:
    storage = None if storage_cost is None or disk_gb is None else storage_hourly(storage_cost, disk_gb)
    hourly = (None if dph_total is None else Decimal(str(dph_total))) if running else storage
    return LiveRate(instance_id=instance_id, running=running, hourly=hourly, storage=storage, since=since)


class WindowSpend(BaseModel):
    """A team's spend in one window at `at`: `charged` (its charges in the window) + `accrued` (what its live
    instances billed since their last charge) = `spent`; `committed` adds the storage its live disks will bill
    to the window's end (a stopped instance keeps billing it), the spend nothing can avoid any more."""

    model_config = ConfigDict(frozen=True)

    window: Window
    at: datetime
    charged: Decimal
    accrued: Decimal
    storage_to_end: Decimal
    exact: bool

    @property
    def spent(self) -> Decimal:
        return self.charged + self.accrued

    @property
    def committed(self) -> Decimal:
        return self.spent + self.storage_to_end


class UnknownSpendError(ValueError):
    """Spend cannot be known: the message names what Vast did not say."""


def window_spend(win: Window, at: datetime, rows: Iterable[ChargeRow], live: Sequence[LiveRate]) -> WindowSpend:
    """Charges in the window, plus each live instance's accrual from its last charge (or the window's start)
    to `at` at its current rate; raises UnknownSpendError when a price needed is unknown."""
    start, end, now = win.start.timestamp(), win.end.timestamp(), at.timestamp()
    charged, exact = ZERO, True
    last: dict[int, float] = {}
    for row in rows:
        share = row_share(row, start, end)
        charged += share.amount
        exact = exact and share.exact
        if row.instance_id is not None and row.end is not None:
            last[row.instance_id] = max(last.get(row.instance_id, row.end), row.end)
    accrued = storage = ZERO
    hours_left = win.hours_left(at)
    for inst in live:
        since = max(start, last.get(inst.instance_id, inst.since if inst.since is not None else start))
        if now > since:
            if inst.hourly is None:
                raise UnknownSpendError(f"instance {inst.instance_id}: Vast gave no price for it, so what it "
                                        "billed since its last charge is unknown")
            accrued += inst.hourly * Decimal(str(now - since)) / SECONDS_PER_HOUR
        if inst.storage is None:
            raise UnknownSpendError(f"instance {inst.instance_id}: Vast gave no storage price or disk size for it, "
                                    "so what it commits to the window's end is unknown")
        storage += inst.storage * hours_left
    return WindowSpend(window=win, at=at, charged=charged, accrued=accrued, storage_to_end=storage, exact=exact)


def charge_days(windows: Iterable[Window], at: datetime) -> tuple[datetime, datetime]:
    """The UTC days (first, last) whose charges cover every window up to `at`: what one charges query asks."""
    wins = list(windows)
    first = min(w.start for w in wins)
    return (first.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0),
            at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0))


# --- thresholds ---------------------------------------------------------------------------------------------------


def share_of(amount: Decimal, budget: Decimal) -> Decimal | None:
    return None if budget <= 0 else amount / budget


def crossed(committed: Decimal, budget: Decimal, thresholds: Iterable[Decimal]) -> list[Decimal]:
    """The thresholds (shares of the budget) that committed spend has reached."""
    return sorted(t for t in thresholds if committed >= budget * t)


# --- prepaid credit ----------------------------------------------------------------------------------------------


def floor_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_FLOOR)


def ceil_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_CEILING)


class CreditPlan(BaseModel):
    """How much credit to move for one team now: `top_up` from the platform to the team, `reclaim` from the team
    back to the platform (whole cents, as Vast transfers them; at most one of them is non-zero). `target` is the
    balance that keeps the period's spend within its budget: what is left of the budget, less the storage the
    team's disks will bill to the period's end (Vast stops a team's running instances when its balance reaches
    zero, but its disks keep billing)."""

    model_config = ConfigDict(frozen=True)

    budget: Decimal
    spent: Decimal
    reserve: Decimal
    balance: Decimal
    target: Decimal
    top_up: Decimal = ZERO
    reclaim: Decimal = ZERO


def credit_plan(*, budget: Decimal, spend: WindowSpend, balance: Decimal, reclaim: bool,
                min_top_up: Decimal = CENT) -> CreditPlan:
    """Top up to the target (rounded down: never beyond it) once the gap is worth a transfer (`min_top_up`: a
    balance below its target only stops the team a little earlier), or take back what is above it (rounded up,
    within the balance) when reclaiming is on: that one cannot wait."""
    target = max(ZERO, budget - spend.spent - spend.storage_to_end)
    base = CreditPlan(budget=budget, spent=spend.spent, reserve=spend.storage_to_end, balance=balance, target=target)
    gap = target - balance
    if gap >= max(CENT, min_top_up):
        return base.model_copy(update={"top_up": floor_cents(gap)})
    if reclaim and -gap > 0:
        amount = min(ceil_cents(-gap), floor_cents(max(ZERO, balance)))
        if amount >= CENT:
            return base.model_copy(update={"reclaim": amount})
    return base


def period_leftover(*, transferred_in: Decimal, transferred_out: Decimal, spent: Decimal) -> Decimal:
    """What a closed period left unused of the credit it was given (negative: spent beyond it)."""
    return transferred_in - transferred_out - spent
