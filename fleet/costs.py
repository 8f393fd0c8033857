"""Money math, in Decimal. One source of truth for the program's exports, the policies' budgets and reports.

A running instance costs `dph_total` $/h (GPU and its disk); a stopped one its storage only
(`storage_cost * disk_gb / 720`, storage_cost being $/GB/month). Daily = hourly x 24, monthly = hourly x 730.
At preview a new instance is estimated from its quote, an existing one from its actual `dph_total`; when neither
is known the estimate is the worst case the declaration allows, its `max_dph` cap.

Unknown is never zero: the functions take a typed `CostBasis` in which None means unknown, an instance whose cost
cannot be bounded has no estimate, and a fleet total with such an instance in it is unknown too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from fleet.instance import DesiredState, InstanceInputs, InstanceOutputs, Quote

HOURS_PER_DAY = Decimal(24)
HOURS_PER_MONTH = Decimal(730)
HOURS_PER_STORAGE_MONTH = Decimal(720)  # Vast bills storage per 30-day month
CENT = Decimal("0.01")

Basis = Literal["actual", "quote", "cap"]


def money(value: float | int | str | Decimal) -> Decimal:
    """A float from JSON to Decimal via its shortest repr, so 0.1 stays 0.1."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def storage_hourly(storage_cost: float | Decimal, disk_gb: float | Decimal) -> Decimal:
    return money(storage_cost) * money(disk_gb) / HOURS_PER_STORAGE_MONTH


def hourly(
    *, state: str, dph_total: float | Decimal, storage_cost: float | Decimal, disk_gb: float | Decimal
) -> Decimal:
    if state == "running":
        return money(dph_total)
    return storage_hourly(storage_cost, disk_gb)


class Rate(BaseModel):
    """What Vast charges one instance: `dph_total` $/h while it runs (GPU and disk), `storage_cost` $/GB/month
    of its disk (None: Vast did not say)."""

    model_config = ConfigDict(frozen=True)

    dph_total: Decimal
    storage_cost: Decimal | None = None

    @classmethod
    def of(cls, dph_total: float | Decimal, storage_cost: float | Decimal | None) -> Rate:
        return cls(dph_total=money(dph_total), storage_cost=None if storage_cost is None else money(storage_cost))


class CostBasis(BaseModel):
    """What one instance's estimate rests on; every None is unknown (at preview, or never reported)."""

    model_config = ConfigDict(frozen=True)

    state: DesiredState | None = "running"
    disk_gb: Decimal | None = None
    max_dph: Decimal | None = None
    actual: Rate | None = None
    quote: Rate | None = None

    @classmethod
    def of(cls, instance: InstanceInputs | InstanceOutputs) -> CostBasis:
        """An instance's inputs (planned: its quote) or outputs (rented: its own prices)."""
        actual = None
        if isinstance(instance, InstanceOutputs) and instance.dph_total is not None:
            actual = Rate.of(instance.dph_total, instance.storage_cost)
        return cls(state=instance.state, disk_gb=money(instance.disk_gb), max_dph=money(instance.max_dph),
                   actual=actual, quote=_quote_rate(instance.quote))

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> CostBasis:
        """Resource properties as Pulumi hands them over as JSON (stack outputs, a preview's steps): a value that
        is missing or not what the contract says it is counts as unknown, never as 0."""
        raw_quote = props.get("quote")
        quoted = _number(raw_quote.get("dph_total")) if isinstance(raw_quote, Mapping) else None
        quote = None
        if quoted is not None and isinstance(raw_quote, Mapping):
            quote = Rate.of(quoted, _number(raw_quote.get("storage_cost")))
        dph_total, storage = _number(props.get("dph_total")), _number(props.get("storage_cost"))
        rented = isinstance(props.get("instance_id"), int) and not isinstance(props.get("instance_id"), bool)
        state = props.get("state", "running")
        return cls(state=state if state in ("running", "stopped") else None, disk_gb=_number(props.get("disk_gb")),
                   max_dph=_number(props.get("max_dph")),
                   actual=Rate.of(dph_total, storage) if rented and dph_total is not None else None, quote=quote)


def _quote_rate(quote: Quote | None) -> Rate | None:
    return None if quote is None else Rate.of(quote.dph_total, quote.storage_cost)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return money(value)
    return None


class InstanceEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    hourly: Decimal
    basis: Basis


def estimate_instance(basis: CostBasis) -> InstanceEstimate | None:
    """One instance's $/h: its actual prices, else its quote, else its `max_dph` cap; None when none is known
    (its cost cannot be bounded: unknown, not free).

    An unknown state is costed as running, and so is a stopped instance whose storage price or disk size is
    unknown: a running instance's $/h includes its storage, so it bounds the stopped cost from above."""
    running = basis.state != "stopped"
    candidates: tuple[tuple[Basis, Rate | None], ...] = (("actual", basis.actual), ("quote", basis.quote))
    for source, rate in candidates:
        if rate is None:
            continue
        if running or rate.storage_cost is None or basis.disk_gb is None:
            return InstanceEstimate(hourly=rate.dph_total, basis=source)
        return InstanceEstimate(hourly=storage_hourly(rate.storage_cost, basis.disk_gb), basis=source)
    if basis.max_dph is not None:
        return InstanceEstimate(hourly=basis.max_dph, basis="cap")
    return None


class Cost(BaseModel):
    """A known $/h, and what it comes to per day and per month."""

    model_config = ConfigDict(frozen=True)

    hourly: Decimal
    daily: Decimal
    monthly: Decimal

    @classmethod
    def from_hourly(cls, hourly_total: Decimal) -> Cost:
        return cls(hourly=hourly_total, daily=hourly_total * HOURS_PER_DAY, monthly=hourly_total * HOURS_PER_MONTH)


class FleetCost(BaseModel):
    """A fleet's estimated cost. `known` is None when `unknown` of its instances could not be bounded: the total
    is then unknown too, never the sum of the others."""

    model_config = ConfigDict(frozen=True)

    known: Cost | None
    unknown: int = 0

    @property
    def hourly(self) -> Decimal | None:
        return None if self.known is None else self.known.hourly

    @property
    def daily(self) -> Decimal | None:
        return None if self.known is None else self.known.daily

    @property
    def monthly(self) -> Decimal | None:
        return None if self.known is None else self.known.monthly

    @classmethod
    def from_hourly(cls, hourly_total: Decimal) -> FleetCost:
        return cls(known=Cost.from_hourly(hourly_total))

    def rounded(self) -> dict[str, float | None]:
        """Cents, as plain numbers for Pulumi stack outputs (null when unknown)."""
        return {period: None if value is None else float(cents(value))
                for period, value in (("hourly", self.hourly), ("daily", self.daily), ("monthly", self.monthly))}


def fleet_cost(instances: Iterable[CostBasis]) -> FleetCost:
    estimates = [estimate_instance(basis) for basis in instances]
    unknown = sum(1 for e in estimates if e is None)
    if unknown:
        return FleetCost(known=None, unknown=unknown)
    return FleetCost.from_hourly(sum((e.hourly for e in estimates if e is not None), Decimal(0)))
