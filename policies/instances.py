"""The one place where the policy pack turns Pulumi's resource properties into values the rules can trust.

Why this exists: during `pulumi preview` some properties are unknown. The policy SDK hands rules a proxy that
raises `UnknownValueError` the moment an unknown value is touched (even through `in` or `.get`), and the SDK
turns that exception into an advisory "can't run policy during preview", i.e. the rule would be skipped and
the preview would pass. A governance rule must not pass silently, so every rule reads properties through
`plain()`, which replaces each unknown by the `UNKNOWN` marker, and then decides on the worst case the
declaration allows (the instance's `max_dph` cap, 16 GPUs, an unverified host, ...).

Every property is read through the contract (`fleet.instance.InstanceOutputs`): its type, bounds and checks
decide what a value means, a missing property means the contract's default (the provider's `check` applies
exactly those), and a value the contract would refuse is treated as unknown (worst case), never trusted.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, TypeAlias, TypeVar, cast

from annotated_types import Le
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from fleet.api_key import API_KEY_TYPE
from fleet.costs import Cost, CostBasis, InstanceEstimate, Rate, estimate_instance, money
from fleet.instance import INSTANCE_TYPE, InstanceOutputs, InstanceSpec, Quote
from fleet.spend import TEAM_SPEND_TYPE, SpendReading, TeamSpendRecord
from fleet.team import TEAM_TYPE
from fleet.team_member import TEAM_MEMBER_TYPE
from fleet.team_role import TEAM_ROLE_TYPE
from policies.config import Config, ConfigProblem, load
from policies.names import RuleName

__all__ = [
    "INSTANCE_TYPE",
    "MAX_GPUS_PER_INSTANCE",
    "UNKNOWN",
    "FleetEstimate",
    "InstanceView",
    "SpendView",
    "Unknown",
    "estimate_fleet",
    "is_unknown",
    "plain",
    "spend_of",
    "stack_of",
]


class Unknown:
    """A property value Pulumi cannot know during preview (the marker `plain()` puts in its place)."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown at preview>"


UNKNOWN: Final = Unknown()
_SENTINELS: Final = frozenset({
    UNKNOWN_BOOLEAN_VALUE, UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE, UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE, UNKNOWN_ARCHIVE_VALUE, UNKNOWN_OBJECT_VALUE,
})

T = TypeVar("T")
Known: TypeAlias = T | Unknown


def is_unknown(value: object) -> bool:
    return value is UNKNOWN


def _max_gpus() -> int:
    """The contract's upper bound on `num_gpus`: the worst case when a count is unknown at preview."""
    for meta in InstanceSpec.model_fields["num_gpus"].metadata:
        if isinstance(meta, Le):
            return int(cast(int, meta.le))
    raise RuntimeError("fleet.instance.InstanceSpec.num_gpus lost its upper bound (le=...)")


MAX_GPUS_PER_INSTANCE: Final = _max_gpus()


def _item(container: Any, key: Any) -> Any:
    try:
        return container[key]
    except UnknownValueError:
        return UNKNOWN


def plain(value: Any) -> Any:
    """A copy of a property value made of dicts, lists and scalars, with `UNKNOWN` where Pulumi had an unknown.

    Accepts the SDK's unknown-checking proxies and plain values holding the engine's sentinel strings alike,
    so unit tests and the real analyzer go through the same code.
    """
    if isinstance(value, str):
        return UNKNOWN if value in _SENTINELS else value
    if isinstance(value, Mapping):
        return {key: plain(_item(value, key)) for key in value}
    if isinstance(value, Sequence):
        return [plain(_item(value, index)) for index in range(len(value))]
    return value


def stack_of(urn: str) -> str | None:
    """The stack name in `urn:pulumi:<stack>::<project>::<type>::<name>` (the policy SDK has no `args.stack`)."""
    if not urn.startswith("urn:pulumi:") or "::" not in urn:
        return None
    return urn.removeprefix("urn:pulumi:").split("::", 1)[0] or None


def current_stack(urns: Iterable[str]) -> str:
    """The stack being analysed: from any resource URN (the Stack resource is always there), else the engine's
    PULUMI_STACK environment variable."""
    for urn in urns:
        stack = stack_of(urn)
        if stack:
            return stack
    return os.environ.get("PULUMI_STACK") or "(unknown stack)"


def _reader(info: FieldInfo) -> TypeAdapter[Any]:
    """The contract's type for one field, with its bounds and checks."""
    annotation = Any if info.annotation is None else info.annotation
    if not info.metadata:
        return TypeAdapter(annotation)
    return TypeAdapter(Annotated[(annotation, *info.metadata)])  # type: ignore[arg-type]


_READERS: dict[str, TypeAdapter[Any]] = {
    name: _reader(info) for model in (InstanceOutputs, Quote) for name, info in model.model_fields.items()}


def _read(model: type[BaseModel], values: Mapping[str, Any], field: str) -> Any:
    """`field` as the contract (and so the provider) reads it: the contract's default when absent (the
    provider's `check` applies exactly those), None when absent without a default or null, UNKNOWN when unknown
    at preview or not a value of the contract's type (never trusted)."""
    info = model.model_fields[field]
    if field not in values:
        return None if info.is_required() else info.get_default(call_default_factory=True)
    value = values[field]
    if value is None or value is UNKNOWN:
        return value
    try:
        return _READERS[field].validate_python(value)
    except ValidationError:
        return UNKNOWN


def _required(value: Any) -> Any:
    """A property every instance has: absent (None) is no better than unknown."""
    return UNKNOWN if value is None else value


@dataclass(frozen=True)
class QuoteView:
    gpu_name: Known[str] | None
    dph_total: Known[float] | None
    storage_cost: Known[float] | None = None
    bid: Known[float] | None = None

    @classmethod
    def of(cls, raw: Any) -> QuoteView | Unknown | None:
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            return UNKNOWN
        return cls(gpu_name=_read(Quote, raw, "gpu_name"), dph_total=_read(Quote, raw, "dph_total"),
                   storage_cost=_read(Quote, raw, "storage_cost"), bid=_read(Quote, raw, "bid"))


@dataclass(frozen=True)
class InstanceView:
    """What the rules read of one `vastai:Instance` (`fleet.instance.InstanceOutputs`, or its inputs), each value
    known, UNKNOWN, or (optional ones) None."""

    name: str
    urn: str
    stack: str
    team: Known[str] | None
    gpu_name: Known[str] | None
    num_gpus: Known[int]
    image: Known[str] | None
    disk_gb: Known[float]
    max_dph: Known[float] | None
    min_reliability: Known[float]
    verified_only: Known[bool]
    state: Known[str]
    quote: QuoteView | Unknown | None
    # outputs: known once Vast rents the instance (None in the inputs of a new one)
    instance_id: Known[int] | None = None
    dph_total: Known[float] | None = None
    storage_cost: Known[float] | None = None
    # bids (inputs): on demand unless declared, worst case when unknown
    interruptible: Known[bool] = False
    max_bid: Known[float] | None = None

    @classmethod
    def of(cls, *, resource_type: str, name: str, urn: str, props: Any) -> InstanceView | None:
        """The view of a Vast instance resource, or None for any other resource type."""
        if resource_type != INSTANCE_TYPE:
            return None
        values = plain(props)
        if not isinstance(values, Mapping):
            values = {}

        def read(field: str) -> Any:
            return _read(InstanceOutputs, values, field)

        return cls(
            name=name, urn=urn, stack=stack_of(urn) or current_stack(()),
            team=read("team"), gpu_name=read("gpu_name"), num_gpus=_required(read("num_gpus")),
            image=read("image"), disk_gb=_required(read("disk_gb")), max_dph=read("max_dph"),
            min_reliability=_required(read("min_reliability")), verified_only=_required(read("verified_only")),
            state=_required(read("state")), quote=QuoteView.of(values.get("quote")),
            instance_id=read("instance_id"), dph_total=read("dph_total"), storage_cost=read("storage_cost"),
            interruptible=_required(read("interruptible")), max_bid=read("max_bid"),
        )

    @property
    def gpus_worst_case(self) -> int:
        return MAX_GPUS_PER_INSTANCE if isinstance(self.num_gpus, Unknown) else int(self.num_gpus)

    def cost_basis(self) -> CostBasis:
        """What `fleet.costs` estimates this instance from: every unknown stays unknown (None), so the estimate
        is the worst case the declaration allows, or none at all."""
        def known(value: Any) -> Decimal | None:
            return None if value is None or isinstance(value, Unknown) else money(value)

        actual = None
        if isinstance(self.instance_id, int) and isinstance(self.dph_total, float):
            actual = Rate.of(self.dph_total, known(self.storage_cost))
        quote = None
        if isinstance(self.quote, QuoteView) and isinstance(self.quote.dph_total, float):
            quote = Rate.of(self.quote.dph_total, known(self.quote.storage_cost))
        return CostBasis(state=self.state if self.state in ("running", "stopped") else None,
                         disk_gb=known(self.disk_gb), max_dph=known(self.max_dph), actual=actual, quote=quote)


@dataclass(frozen=True)
class FleetEstimate:
    """The stack's estimated cost, exactly as `fleet.costs` computes it, plus what the estimate rests on.

    `unbounded` names instances whose cost cannot be bounded at preview (no actual price, no quote and an
    unknown `max_dph`): budget rules deny those rather than count them as free.
    """

    cost: Cost
    instances: tuple[tuple[str, InstanceEstimate], ...]
    unbounded: tuple[InstanceView, ...]

    @property
    def count(self) -> int:
        return len(self.instances) + len(self.unbounded)

    def basis_summary(self) -> str:
        counts = Counter(estimate.basis for _, estimate in self.instances)
        labels = {"actual": "actual $/h", "quote": "quoted", "cap": "at their max_dph cap"}
        parts = [f"{counts[basis]} {labels[basis]}" for basis in ("quote", "actual", "cap") if counts[basis]]
        noun = "instance" if self.count == 1 else "instances"
        return f"{self.count} {noun} at ${self.cost.hourly.quantize(Decimal('0.01'))}/h: " + (
            ", ".join(parts) or "none")


def estimate_fleet(views: Iterable[InstanceView]) -> FleetEstimate:
    estimates: list[tuple[str, InstanceEstimate]] = []
    unbounded: list[InstanceView] = []
    for view in views:
        estimate = estimate_instance(view.cost_basis())
        if estimate is None:
            unbounded.append(view)
        else:
            estimates.append((view.name, estimate))
    total = sum((e.hourly for _, e in estimates), Decimal(0))
    return FleetEstimate(cost=Cost.from_hourly(total), instances=tuple(estimates), unbounded=tuple(unbounded))


@dataclass(frozen=True)
class SpendView:
    """The stack's `vastai:TeamSpend` (`fleet.spend`), as the budget rules read it: its reading when it has a
    known one, else what is wrong (`problem`: the message key of `vast-actual-spend`)."""

    urn: str | None
    team: str | None
    timezone: str | None
    reading: SpendReading | None
    problem: str | None = None  # "missing", "invalid", "unknown"

    @property
    def known(self) -> SpendReading | None:
        return self.reading if self.problem is None else None


def spend_of(resources: Iterable[Any]) -> SpendView:
    """The stack's spend reading: from the one `vastai:TeamSpend` resource the program declares per team stack."""
    found = [r for r in resources if r.resource_type == TEAM_SPEND_TYPE]
    if not found:
        return SpendView(urn=None, team=None, timezone=None, reading=None, problem="missing")
    resource = found[0]
    values = plain(resource.props)
    try:
        record = TeamSpendRecord.model_validate(values if isinstance(values, Mapping) else {})
    except ValidationError:
        return SpendView(urn=resource.urn, team=None, timezone=None, reading=None, problem="invalid")
    reading = record.reading
    if reading is None or reading.status != "known" or reading.read_at is None:
        return SpendView(urn=resource.urn, team=record.team, timezone=record.timezone, reading=reading,
                         problem="unknown")
    return SpendView(urn=resource.urn, team=record.team, timezone=record.timezone, reading=reading)


C = TypeVar("C", bound=Config)
# The platform rules' resources (policies.access, which imports this module, reads them).
ACCESS_TYPES: Final = frozenset({TEAM_TYPE, TEAM_ROLE_TYPE, TEAM_MEMBER_TYPE, API_KEY_TYPE})


def utc_today() -> date:
    """The day exceptions and key ages are judged on (the rules take `today` to make tests exact)."""
    return datetime.now(UTC).date()


def instance_and_config(model: type[C], rule: RuleName, args: Any, report: Callable[[str, str | None], None]
                        ) -> tuple[InstanceView, C] | None:
    """The instance and the rule's block; None (after reporting any config problem) when there is nothing
    more to check. Other resource types are not ours to judge and are skipped before the config is read."""
    view = InstanceView.of(resource_type=args.resource_type, name=args.name, urn=args.urn, props=args.props)
    if view is None:
        return None
    config = load(model, args.get_config(), rule=rule, stack=view.stack)
    if isinstance(config, ConfigProblem):
        report(config.message, None)
        return None
    return view, config


def stack_and_config(model: type[C], rule: RuleName, args: Any, report: Callable[[str, str | None], None]
                     ) -> tuple[str, list[InstanceView], C] | None:
    """A stack rule's stack, its instances and its block; None (after reporting any config problem) when there
    is nothing more to check. The platform stack (Vast access, no instance) is the platform rules'
    (policies/platform_rules.py): a stack with access resources and instances is judged by both, so neither kind
    of stack escapes its rules by declaring the other's."""
    stack = current_stack(r.urn for r in args.resources)
    views = [
        view for r in args.resources
        if (view := InstanceView.of(resource_type=r.resource_type, name=r.name, urn=r.urn, props=r.props))
    ]
    if not views and any(r.resource_type in ACCESS_TYPES for r in args.resources):
        return None
    config = load(model, args.get_config(), rule=rule, stack=stack)
    if isinstance(config, ConfigProblem):
        report(config.message, None)
        return None
    return stack, views, config
