"""The emulator's money math, in Decimal: prices, per-day charge lines and their rounding. Pure functions.

The formula (also in README.md, which reports reconcile against):

- storage $/h   = storage_cost ($/GB/month) x disk_gb / 720          (Vast bills storage per 30-day month)
- dph_total     = dph_base + storage $/h                              (what search and instance rows show)
- an instance accrues storage from creation to destruction whatever its state, and `dph_base` on top
  only while `actual_status == "running"`;
- accrual is split at UTC midnights into one charge row per instance per day; within a row
  `gpu  = round6(dph_base   x running_seconds / 3600)` (a bid changed during the day: the sum over the rates it
  ran at, rounded once) and
  `disk = round6(storage/h x alive_seconds   / 3600)`, `bwu` and `bwd` are 0 (no traffic is emulated), and
  the row's `amount` is the sum of its items;
- the account balance is its credit minus the sum of its rows' amounts, so the rows add up to exactly what
  was debited: a report that sums `amount`s reconciles with the balance to the micro-dollar.

Rounding happens once per row item (ROUND_HALF_UP to 6 places), never per accrual step, so how often the
emulator happened to be polled does not change any number.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal

HOURS_PER_STORAGE_MONTH = Decimal(720)
SECONDS_PER_HOUR = Decimal(3600)
SECONDS_PER_DAY = 86400
MICRO = Decimal("0.000001")


def dec(value: float | int | str | Decimal) -> Decimal:
    """A float to Decimal through its shortest repr, so 0.1 stays 0.1 (not 0.1000000000000000055...)."""
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def round6(value: Decimal) -> Decimal:
    return value.quantize(MICRO, rounding=ROUND_HALF_UP)


def storage_per_hour(storage_cost: Decimal, disk_gb: Decimal) -> Decimal:
    return storage_cost * disk_gb / HOURS_PER_STORAGE_MONTH


def dph_total(dph_base: Decimal, storage_cost: Decimal, disk_gb: Decimal) -> Decimal:
    return dph_base + storage_per_hour(storage_cost, disk_gb)


def accrued(rate_per_hour: Decimal, seconds: Decimal) -> Decimal:
    """One row item: rate x time, rounded once."""
    return round6(rate_per_hour * seconds / SECONDS_PER_HOUR)


def gpu_accrued(priced_running: Mapping[str, Decimal], running_seconds: Decimal, dph_base: Decimal) -> Decimal:
    """A row's GPU item: each running second at the rate it ran at (a bid changed during the day bills the
    time before the change at the old bid), rounded once. Rows written before rates were kept per part bill
    all their running time at `dph_base`."""
    if not priced_running:
        return accrued(dph_base, running_seconds)
    return round6(sum((Decimal(rate) * seconds for rate, seconds in priced_running.items()), Decimal(0))
                  / SECONDS_PER_HOUR)


def seconds_between(start: float, end: float) -> Decimal:
    """Exact decimal seconds between two clock readings (each read through its shortest repr)."""
    return dec(end) - dec(start)


def day_of(ts: float) -> int:
    """The UTC midnight (epoch seconds) of the day containing `ts`."""
    return int(ts // SECONDS_PER_DAY) * SECONDS_PER_DAY


def split_by_day(start: float, end: float) -> Iterator[tuple[int, float, float]]:
    """[start, end) cut at UTC midnights: (day, piece_start, piece_end) for each non-empty piece."""
    t = start
    while t < end:
        day = day_of(t)
        piece_end = min(end, float(day + SECONDS_PER_DAY))
        if piece_end <= t:  # float guard: never loop on a zero-length piece
            break
        yield day, t, piece_end
        t = piece_end


def wire(value: Decimal) -> float:
    """Money on the wire: a JSON number (Vast sends floats), from the already rounded Decimal."""
    return float(value)
