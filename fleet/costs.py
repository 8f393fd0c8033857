"""Money math, in Decimal. One source of truth for the program's exports, the policies' budgets and reports.

A running instance costs `dph_total` $/h (GPU and its disk); a stopped one its storage only
(`storage_cost * disk_gb / 720`, storage_cost being $/GB/month). Daily = hourly x 24, monthly = hourly x 730.
At preview a new instance is estimated from its quote, an existing one from its actual `dph_total`; when neither
is known the estimate is the worst case the declaration allows, its `max_dph` cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

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


class InstanceEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    hourly: Decimal
    basis: Basis


def _known_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def estimate_instance(props: Mapping[str, Any]) -> InstanceEstimate:
    """Estimate one instance's $/h from its resource properties (inputs after check, or outputs).

    Values that are missing or not numbers (e.g. unknown at preview) fall through to the next basis.
    """
    state = props.get("state", "running")
    disk = props.get("disk_gb", 0)
    disk = disk if _known_number(disk) else 0
    if props.get("instance_id") is not None and _known_number(props.get("dph_total")):
        storage = props.get("storage_cost", 0)
        return InstanceEstimate(
            hourly=hourly(state=state, dph_total=props["dph_total"],
                          storage_cost=storage if _known_number(storage) else 0, disk_gb=disk),
            basis="actual",
        )
    quote = props.get("quote")
    if isinstance(quote, Mapping) and _known_number(quote.get("dph_total")):
        storage = quote.get("storage_cost", 0)
        return InstanceEstimate(
            hourly=hourly(state=state, dph_total=quote["dph_total"],
                          storage_cost=storage if _known_number(storage) else 0, disk_gb=disk),
            basis="quote",
        )
    cap = props.get("max_dph")
    return InstanceEstimate(hourly=money(cap) if isinstance(cap, int | float) else Decimal(0), basis="cap")


class FleetCost(BaseModel):
    model_config = ConfigDict(frozen=True)

    hourly: Decimal
    daily: Decimal
    monthly: Decimal

    @classmethod
    def from_hourly(cls, hourly_total: Decimal) -> FleetCost:
        return cls(hourly=hourly_total, daily=hourly_total * HOURS_PER_DAY, monthly=hourly_total * HOURS_PER_MONTH)

    def rounded(self) -> dict[str, float]:
        """Cents, as plain numbers for Pulumi stack outputs."""
        return {"hourly": float(cents(self.hourly)), "daily": float(cents(self.daily)),
                "monthly": float(cents(self.monthly))}


def fleet_cost(instances: Iterable[Mapping[str, Any]]) -> FleetCost:
    return FleetCost.from_hourly(sum((estimate_instance(p).hourly for p in instances), Decimal(0)))
