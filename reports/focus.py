"""The month as FinOps FOCUS cost-and-usage rows (FOCUS 1.4, the Cost and Usage dataset). Pure: no I/O.

One row per instance, rate and UTC day: the charge period is the day (FOCUS's inclusive start and exclusive
end), the billing period the month. vastguard is the data generator, Vast.ai the service provider, host and
invoice issuer; each team rents with its own Vast.ai key, so a team is a billing account and a stack a sub
account. Costs are what the reports reconstruct from stack history (Vast's on-demand prices carry no
discounts, so list = contracted = effective = billed); a slice whose price is unknown cannot be a row
(`BilledCost` must not be null) and is counted instead, never written as 0.

vastguard's own facts go in `x_`-prefixed custom columns after the FOCUS ones, as the spec's column handling
attribute asks. The renderer is `reports/render/focus.py`; the required columns are checked against the
spec's own list in tests/reports/test_focus.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from reports.costing import cost, hours, month_range, slices
from reports.models import SCHEMA_VERSION, ComponentName, InstanceTimeline

FOCUS_VERSION = "1.4"
PROVIDER = "Vast.ai"
CURRENCY = "USD"

_SERVICE: dict[ComponentName, tuple[str, str, str]] = {
    # component -> (ServiceName, ServiceCategory, ServiceSubcategory): names from FOCUS's allowed values
    "running": ("GPU Instances", "Compute", "Virtual Machines"),
    "interruptible": ("GPU Instances", "Compute", "Virtual Machines"),
    "storage": ("Instance Storage", "Storage", "Block Storage"),
}
PricingCategory = Literal["Standard", "Dynamic"]
_PRICING: dict[ComponentName, PricingCategory] = {
    # FOCUS PricingCategory (columns/pricingcategory.md): "Dynamic: charges priced at a variable rate determined
    # by the provider ... like interruptible or low priority resources"; the on-demand price and the disk's
    # storage rate are the host's published prices: "Standard". It MUST be present once a provider has more
    # than one pricing category, which interruptible rentals make so.
    "running": "Standard",
    "interruptible": "Dynamic",
    "storage": "Standard",
}


class FocusRow(BaseModel):
    """One FOCUS row; field names are the FOCUS column ids (and `x_` custom columns)."""

    model_config = ConfigDict(frozen=True)

    BilledCost: Decimal
    BillingAccountId: str
    BillingAccountName: str
    BillingCurrency: str = CURRENCY
    BillingPeriodEnd: datetime
    BillingPeriodStart: datetime
    ChargeCategory: Literal["Usage"] = "Usage"
    ChargeClass: None = None
    ChargeDescription: str
    ChargeFrequency: Literal["Usage-Based"] = "Usage-Based"
    ChargePeriodEnd: datetime
    ChargePeriodStart: datetime
    # Vast sells commitments (reserved instances), so FOCUS wants these columns; none applies to what vastguard
    # rents (on demand or at a bid), so each is null, as the spec requires when CommitmentDiscountId is.
    CommitmentDiscountCategory: None = None
    CommitmentDiscountId: None = None
    CommitmentDiscountName: None = None
    CommitmentDiscountQuantity: None = None
    CommitmentDiscountStatus: None = None
    CommitmentDiscountType: None = None
    CommitmentDiscountUnit: None = None
    ConsumedQuantity: Decimal
    ConsumedUnit: str = "Hours"
    ContractedCost: Decimal
    ContractedUnitPrice: Decimal
    EffectiveCost: Decimal
    HostProviderName: str = PROVIDER
    InvoiceIssuerName: str = PROVIDER
    ListCost: Decimal
    ListUnitPrice: Decimal
    PricingCategory: PricingCategory
    PricingQuantity: Decimal
    PricingUnit: str = "Hours"
    ResourceId: str | None
    ResourceName: str
    ResourceType: str = "GPU Instance"
    ServiceCategory: str
    ServiceName: str
    ServiceProviderName: str = PROVIDER
    ServiceSubcategory: str
    SubAccountId: str
    SubAccountName: str
    x_Team: str
    x_Project: str
    x_Stack: str
    x_InstanceName: str
    x_GpuName: str | None
    x_NumGpus: int | None
    x_Usage: ComponentName
    x_TimesEstimated: bool


class FocusExport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    report: Literal["focus"] = "focus"
    focus_version: str = FOCUS_VERSION
    generated_at: datetime
    month: str
    rows: tuple[FocusRow, ...]
    unknown_price_slices: int = 0


def _description(component: ComponentName, gpu: str | None, num_gpus: int | None, hourly: Decimal) -> str:
    what = f"{num_gpus or 1}x {gpu}" if gpu else "GPU instance"
    if component == "running":
        return f"{what} running, ${hourly.normalize():f}/h (GPU and disk)"
    if component == "interruptible":
        return f"{what} running interruptible, ${hourly.normalize():f}/h (its bid and disk)"
    return f"{what} stopped or outbid: disk storage only, ${hourly.normalize():f}/h"


_Key = tuple[str, str, str, str, int | None, str | None, int | None, ComponentName, Decimal | None, str]


def focus_export(timelines: Iterable[InstanceTimeline], *, month: str, now: datetime, generated_at: datetime,
                 teams: Iterable[str] = ()) -> FocusExport:
    start, end = month_range(month)
    wanted = set(teams)
    micros: dict[_Key, int] = defaultdict(int)
    estimated: dict[_Key, bool] = defaultdict(bool)
    unknown = 0
    by_project = {(tl.team, tl.stack, tl.name, tl.instance_id): tl.project for tl in timelines}
    for s in slices(timelines, start=start, end=end, now=now, granularity="day"):
        if wanted and s.team not in wanted:
            continue
        if s.hourly is None:
            unknown += 1
            continue
        project = by_project.get((s.team, s.stack, s.name, s.instance_id), "")
        key: _Key = (s.team, project, s.stack, s.name, s.instance_id, s.gpu_name, s.num_gpus, s.component, s.hourly,
                     s.period)
        micros[key] += s.micros
        estimated[key] = estimated[key] or s.estimated
    rows = []
    for key in sorted(micros, key=lambda k: (k[9], k[0], k[2], k[3], k[4] or 0, k[7], k[8] or 0)):
        team, project, stack, name, iid, gpu, num_gpus, component, hourly, day = key
        amount = cost(hourly, micros[key])
        if hourly is None or amount is None:  # counted as unknown above; never keyed
            continue
        quantity = hours(micros[key])
        day_start = datetime.fromisoformat(day).replace(tzinfo=start.tzinfo)
        service, category, subcategory = _SERVICE[component]
        rows.append(FocusRow(
            BilledCost=amount, BillingAccountId=team, BillingAccountName=team, BillingPeriodEnd=end,
            BillingPeriodStart=start, ChargeDescription=_description(component, gpu, num_gpus, hourly),
            ChargePeriodEnd=day_start + timedelta(days=1), ChargePeriodStart=day_start, ConsumedQuantity=quantity,
            ContractedCost=amount, ContractedUnitPrice=hourly, EffectiveCost=amount, ListCost=amount,
            ListUnitPrice=hourly, PricingCategory=_PRICING[component], PricingQuantity=quantity,
            ResourceId=None if iid is None else str(iid),
            ResourceName=f"{stack}/{name}", ServiceCategory=category, ServiceName=service,
            ServiceSubcategory=subcategory, SubAccountId=f"{project}/{stack}" if project else stack,
            SubAccountName=stack, x_Team=team, x_Project=project, x_Stack=stack, x_InstanceName=name, x_GpuName=gpu,
            x_NumGpus=num_gpus, x_Usage=component, x_TimesEstimated=estimated[key],
        ))
    return FocusExport(generated_at=generated_at, month=month, rows=tuple(rows), unknown_price_slices=unknown)
