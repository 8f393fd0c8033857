"""The one place where the policy pack turns Pulumi's resource properties into values the rules can trust.

Why this exists: during `pulumi preview` some properties are unknown. The policy SDK hands rules a proxy that
raises `UnknownValueError` the moment an unknown value is touched (even through `in` or `.get`), and the SDK
turns that exception into an advisory "can't run policy during preview", i.e. the rule would be skipped and
the preview would pass. A governance rule must not pass silently, so every rule reads properties through
`plain()`, which replaces each unknown by the `UNKNOWN` marker, and then decides on the worst case the
declaration allows (the instance's `max_dph` cap, 16 GPUs, an unverified host, ...).

Missing properties mean the contract's default (`fleet.instance.InstanceSpec`), because the provider's `check`
applies exactly those defaults; a value of the wrong type is treated as unknown (worst case), never trusted.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeAlias, TypeVar, cast

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

from fleet.costs import FleetCost, InstanceEstimate, estimate_instance
from fleet.instance import INSTANCE_TYPE, InstanceSpec

__all__ = [
    "INSTANCE_TYPE",
    "MAX_GPUS_PER_INSTANCE",
    "UNKNOWN",
    "FleetEstimate",
    "InstanceView",
    "Unknown",
    "estimate_fleet",
    "is_unknown",
    "plain",
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


def _read(container: Any, key: Any) -> Any:
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
        return {key: plain(_read(value, key)) for key in value}
    if isinstance(value, Sequence):
        return [plain(_read(value, index)) for index in range(len(value))]
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


def _default(field: str) -> Any:
    """The contract's default for an instance property, or None when the property is required."""
    info = InstanceSpec.model_fields.get(field)
    if info is None or info.is_required():
        return None
    return info.get_default(call_default_factory=True)


def _number(props: Mapping[str, Any], field: str, default: Any = None) -> Known[float] | None:
    """A known number, UNKNOWN (also for a wrong type), or None when absent with no default."""
    value = props.get(field, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return UNKNOWN
    return float(value)


def _text(props: Mapping[str, Any], field: str, default: Any = None) -> Known[str] | None:
    value = props.get(field, default)
    if value is None:
        return None
    return value if isinstance(value, str) else UNKNOWN


def _flag(props: Mapping[str, Any], field: str, default: Any = None) -> Known[bool]:
    value = props.get(field, default)
    return value if isinstance(value, bool) else UNKNOWN


@dataclass(frozen=True)
class QuoteView:
    gpu_name: Known[str] | None
    dph_total: Known[float] | None


@dataclass(frozen=True)
class InstanceView:
    """What the rules read of one `vastai:Instance`, each value known, UNKNOWN, or (optional ones) None."""

    name: str
    urn: str
    stack: str
    props: Mapping[str, Any]
    team: Known[str] | None
    gpu_name: Known[str] | None
    num_gpus: Known[float]
    image: Known[str] | None
    disk_gb: Known[float]
    max_dph: Known[float] | None
    min_reliability: Known[float]
    verified_only: Known[bool]
    state: Known[str]
    quote: QuoteView | Unknown | None

    @classmethod
    def of(cls, *, resource_type: str, name: str, urn: str, props: Any) -> InstanceView | None:
        """The view of a Vast instance resource, or None for any other resource type."""
        if resource_type != INSTANCE_TYPE:
            return None
        values = plain(props)
        if not isinstance(values, Mapping):
            values = {}
        raw_quote = values.get("quote")
        quote: QuoteView | Unknown | None
        if raw_quote is None:
            quote = None
        elif isinstance(raw_quote, Mapping):
            quote = QuoteView(gpu_name=_text(raw_quote, "gpu_name"), dph_total=_number(raw_quote, "dph_total"))
        else:
            quote = UNKNOWN
        num_gpus = _number(values, "num_gpus", _default("num_gpus"))
        disk_gb = _number(values, "disk_gb", _default("disk_gb"))
        reliability = _number(values, "min_reliability", _default("min_reliability"))
        return cls(
            name=name, urn=urn, stack=stack_of(urn) or current_stack(()), props=values,
            team=_text(values, "team"), gpu_name=_text(values, "gpu_name"),
            num_gpus=UNKNOWN if num_gpus is None else num_gpus,
            image=_text(values, "image"),
            disk_gb=UNKNOWN if disk_gb is None else disk_gb,
            max_dph=_number(values, "max_dph"),
            min_reliability=UNKNOWN if reliability is None else reliability,
            verified_only=_flag(values, "verified_only", _default("verified_only")),
            state=_text(values, "state", _default("state")) or UNKNOWN,
            quote=quote,
        )

    @property
    def gpus_worst_case(self) -> int:
        return MAX_GPUS_PER_INSTANCE if isinstance(self.num_gpus, Unknown) else int(self.num_gpus)


def _known_props(values: Any) -> Any:
    """Drop unknown values so `fleet.costs.estimate_instance` falls through to its next basis for them."""
    if isinstance(values, Mapping):
        return {k: _known_props(v) for k, v in values.items() if v is not UNKNOWN}
    return values


def _worst_case_props(view: InstanceView) -> dict[str, Any]:
    """The instance's properties with unknowns resolved to the dearest reading.

    An unknown state, or a stopped instance whose storage price or disk size is unknown, is costed as
    running: a running instance's $/h includes its storage, so it bounds the stopped cost from above.
    """
    props: dict[str, Any] = _known_props(view.props)
    quote = view.props.get("quote")
    storage_unknown = (
        view.props.get("storage_cost") is UNKNOWN
        or quote is UNKNOWN
        or (isinstance(quote, Mapping) and quote.get("storage_cost") is UNKNOWN)
    )
    if isinstance(view.state, Unknown) or (
        view.state != "running" and (isinstance(view.disk_gb, Unknown) or storage_unknown)
    ):
        props["state"] = "running"
    return props


@dataclass(frozen=True)
class FleetEstimate:
    """The stack's estimated cost, exactly as `fleet.costs` computes it, plus what the estimate rests on.

    `unbounded` names instances whose cost cannot be bounded at preview (no actual price, no quote and an
    unknown `max_dph`): budget rules deny those rather than count them as free.
    """

    cost: FleetCost
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
        props = _worst_case_props(view)
        estimate = estimate_instance(props)
        if estimate.basis == "cap" and not isinstance(view.max_dph, float):
            unbounded.append(view)
            continue
        estimates.append((view.name, estimate))
    total = sum((e.hourly for _, e in estimates), Decimal(0))
    return FleetEstimate(cost=FleetCost.from_hourly(total), instances=tuple(estimates), unbounded=tuple(unbounded))
