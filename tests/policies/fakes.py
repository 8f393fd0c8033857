"""Fake policy arguments and a violation collector: the unit tests call each rule function directly.

The args are the SDK's own ResourceValidationArgs / StackValidationArgs, with props wrapped in the SDK's
unknown-checking proxy, and each rule's config reconciled from a real team file the way the engine does
(schema defaults, then the file's block), so a unit test sees what the rule sees inside the analyzer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from fleet.budget import WindowKind, window
from fleet.costs import Cost, CostBasis, fleet_cost
from fleet.instance import INSTANCE_TYPE, InstanceInputs, InstanceOutputs, Quote
from fleet.spend import TEAM_SPEND_NAME, TEAM_SPEND_TYPE, LiveInstance, SpendReading, TeamSpendOutputs, WindowReading
from policies.config import config_schema
from policies.names import RuleName
from policies.rules import RULES_BY_NAME
from tests.policies.harness import PROJECT, team_file

UNKNOWN_NUMBER = UNKNOWN_NUMBER_VALUE
UNKNOWN_STRING = UNKNOWN_STRING_VALUE
TODAY = date(2026, 6, 15)
MIDNIGHT = datetime(2026, 6, 15, tzinfo=UTC)


def urn(stack: str, name: str, type_: str = INSTANCE_TYPE) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{type_}::{name}"


def quote(gpu_name: str = "RTX 4090", dph_total: float = 0.35, storage_cost: float = 0.10) -> dict[str, Any]:
    return {"offer_id": 4242, "gpu_name": gpu_name, "dph_total": dph_total, "storage_cost": storage_cost,
            "matched": 7, "quoted_at": "2026-06-15T09:00:00Z"}


def inputs(team: str = "ml-engineering", **overrides: Any) -> dict[str, Any]:
    """An instance's inputs after the provider's check (contract-valid, then overridden verbatim, so a
    test can put an engine unknown sentinel or a wrong value in any property)."""
    base = InstanceInputs(
        team=team, gpu_name="RTX 4090", num_gpus=1, image="pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime",
        disk_gb=32, max_dph=0.5, label=f"{team}/train-0", quote=Quote.model_validate(quote()),
        ownership_tag=f"vg:{team}/train-0",
    ).model_dump(mode="json")
    base.update(overrides)
    return base


def outputs(team: str = "ml-engineering", *, dph_total: float = 0.40, **overrides: Any) -> dict[str, Any]:
    """The outputs of an instance Vast already rents (instance_id and actual dph_total set)."""
    props = inputs(team)
    props.update(instance_id=9001, offer_id=4242, dph_total=dph_total, storage_cost=0.10, status="running",
                 vast_label=f"{team}/train-0 [vg:{team}/train-0#0123abcd]")
    InstanceOutputs.model_validate(props)
    props.update(overrides)
    return props


def spend(team: str = "ml-engineering", *, stack: str | None = None, at: datetime = MIDNIGHT,
          spent: dict[WindowKind, float | str] | None = None, timezone: str = "UTC",
          kinds: tuple[WindowKind, ...] = ("day", "month"), instances: tuple[LiveInstance, ...] = (),
          status: str = "known", reason: str | None = None) -> dict[str, Any]:
    """A vastai:TeamSpend's outputs: a reading taken at `at` (default: the start of TODAY, so a day's projection
    is 24 hours of the fleet's estimate) with `spent` charged so far in each window."""
    spent = spent or {}
    windows = []
    for kind in kinds:
        w = window(kind, at, timezone)
        windows.append(WindowReading(kind=kind, key=w.key, start=w.start.timestamp(), end=w.end.timestamp(),
                                     charged=Decimal(str(spent.get(kind, 0))), accrued=Decimal(0),
                                     storage_to_end=Decimal(0), exact=True))
    reading = (SpendReading(status="known", read_at=at.timestamp(), timezone=timezone, windows=tuple(windows),
                            instances=instances)
               if status == "known" else SpendReading.unknown(reason or "charges unreadable", timezone=timezone))
    return TeamSpendOutputs(team=team, stack=stack or team, timezone=timezone, windows=kinds,
                            reading=reading).model_dump(mode="json")


def contract_cost(instances: Iterable[Mapping[str, Any]]) -> Cost:
    """`fleet.costs` on the typed contract (outputs when rented, inputs otherwise): what the pack must agree with."""
    typed = [InstanceOutputs.model_validate(p) if p.get("instance_id") is not None else InstanceInputs.model_validate(
        {k: v for k, v in p.items() if k in InstanceInputs.model_fields}) for p in instances]
    cost = fleet_cost(CostBasis.of(t) for t in typed).known
    assert cost is not None
    return cost


def block(team: str | None, rule: RuleName, **changes: Any) -> dict[str, Any]:
    """The config a rule receives when `policies/teams/<team>.json` is passed (None: no file at all)."""
    schema = config_schema(RULES_BY_NAME[rule].config).properties
    merged = {k: v["default"] for k, v in schema.items() if "default" in v}
    if team is not None:
        merged.update({k: v for k, v in team_file(team)[rule.value].items() if k != "enforcementLevel"})
    merged.update(changes)
    return merged


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def resource_args(props: Mapping[str, Any], config: Mapping[str, Any], *, name: str = "train-0",
                  stack: str = "ml-engineering", type_: str = INSTANCE_TYPE) -> ResourceValidationArgs:
    return ResourceValidationArgs(type_, unknown_checking_proxy(dict(props)), urn(stack, name, type_), name,
                                  _options(), None, dict(config))


def stack_args(instances: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any], *,
               stack: str = "ml-engineering", reading: Mapping[str, Any] | None = None) -> StackValidationArgs:
    """A stack of instances (name -> outputs), preceded by the pulumi:pulumi:Stack resource, as the engine
    sends it, and with `reading` (a `spend()`) its vastai:TeamSpend."""
    stack_type = "pulumi:pulumi:Stack"
    resources = [PolicyResource(stack_type, unknown_checking_proxy({}), urn(stack, f"{PROJECT}-{stack}", stack_type),
                                f"{PROJECT}-{stack}", _options(), None, None, [], {})]
    for name, props in instances.items():
        resources.append(PolicyResource(INSTANCE_TYPE, unknown_checking_proxy(dict(props)), urn(stack, name), name,
                                        _options(), None, None, [], {}))
    if reading is not None:
        resources.append(PolicyResource(TEAM_SPEND_TYPE, unknown_checking_proxy(dict(reading)),
                                        urn(stack, TEAM_SPEND_NAME, TEAM_SPEND_TYPE), TEAM_SPEND_NAME, _options(),
                                        None, None, [], {}))
    return StackValidationArgs(resources, dict(config))


@dataclass(frozen=True)
class Violation:
    message: str
    urn: str | None


def collect(validate: Callable[..., None], args: Any, *, today: date = TODAY) -> list[Violation]:
    """Run one rule function and return what it reported."""
    found: list[Violation] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(Violation(message, urn))

    validate(args, report, today=today)
    return found


def messages(violations: Sequence[Violation]) -> list[str]:
    return [v.message for v in violations]
