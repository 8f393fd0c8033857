"""Each rule's configuration block: its pydantic model, its JSON schema for Pulumi, and how a rule loads it.

Why every block repeats `team`: Pulumi hands each policy only its own block of `--policy-pack-config` (there is
no pack-wide config a rule could read), so a rule that must say "ml-engineering: ..." or must fail closed when
no team file was passed can only learn the team from its own block. The repetition is checked offline:
`policies.teamfile` rejects a file whose blocks disagree on the team (or on a copied value such as the daily
budget), and `vastguard team add` writes consistent files from the template.

Why the JSON schemas mark nothing `required`: the engine would then reject a missing block with its own
terse schema error before any rule runs. Instead a missing or incomplete block reaches the rule, which denies
with a message naming the file to create or fix (`load()`), so "no config" fails closed *and* explains itself.
Only settings with a documented default (minimum reliability 0.95, verified hosts only, warning at 80% of
the budget, no monthly budget, no burn cap, no exceptions) have one; every team limit must be written down.

Exceptions are time-boxed grants inside the block of the rule they relax (`allow` has that rule's value
type): the rule applies an active one and ignores an expired one. A copy of each lives in the
`vast-policy-exceptions` block, whose advisory policy reports them, because a mandatory rule cannot report an
advisory finding (a policy's diagnostics all carry its one enforcement level).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Generic, Literal, TypeVar

from pulumi_policy import PolicyConfigSchema
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    WithJsonSchema,
)

from fleet.budget import UnknownTimezoneError, zone
from fleet.declaration import TEAM_NAME
from policies.names import RuleName
from policies.report import render

__all__ = [
    "ActualSpendConfig",
    "BudgetEnforcementConfig",
    "Config",
    "ConfigProblem",
    "DailyBudgetConfig",
    "DailyBudgetWarningConfig",
    "DiskMaxSizeConfig",
    "EnforcementLevelName",
    "GpuAllowListConfig",
    "Grant",
    "HostMinReliabilityConfig",
    "IdlePolicy",
    "ImageAllowedRegistriesConfig",
    "InstanceMaxDphConfig",
    "MaxGpusConfig",
    "MaxHourlyBurnConfig",
    "MaxInstancesConfig",
    "MonthlyBudgetConfig",
    "NamedGrant",
    "PolicyExceptionsConfig",
    "PrepaidPolicy",
    "TeamBindingConfig",
    "VerifiedHostsOnlyConfig",
    "config_schema",
    "describe_errors",
    "load",
]

EnforcementLevelName = Literal["advisory", "mandatory", "remediate", "disabled"]
AllowT = TypeVar("AllowT")


# The engine checks the file against each policy's JSON schema before any rule runs; there `true` and `"3"`
# are not numbers and `20260630` is not a date, while pydantic's lax mode would read them as 1, 3 and a
# timestamp. These types refuse what the schema refuses, so `vastguard team check` never passes a file that
# `pulumi preview` then rejects.
def _json_number(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError(f"must be a JSON number, not {json.dumps(value)}")
    return value


def _json_date(value: Any) -> Any:
    if not isinstance(value, str | date):
        raise ValueError(f"must be a date string YYYY-MM-DD, not {json.dumps(value)}")
    return value


# The bounds sit in the types so that an exception's `allow` has exactly its limit's domain.
Amount = Annotated[float, Field(ge=0), BeforeValidator(_json_number)]
Share = Annotated[float, Field(ge=0, le=1), BeforeValidator(_json_number)]
Count = Annotated[int, Field(ge=0), BeforeValidator(_json_number)]
Day = Annotated[date, BeforeValidator(_json_date)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    return value


def _one_word(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"must be one word without spaces, not {json.dumps(value)}")
    return value


# An empty or blank entry matches nothing (or, in the GPU list, is skipped), so it is always a slip. The
# schema's pattern makes the engine refuse it too; the validator says so in words.
GpuName = Annotated[str, AfterValidator(_not_blank), WithJsonSchema({"type": "string", "pattern": r"\S"})]
Word = Annotated[str, AfterValidator(_one_word), WithJsonSchema({"type": "string", "pattern": r"^\S+$"})]


class Grant(BaseModel, Generic[AllowT]):
    """A time-boxed exception to one rule: while active, the rule also allows `allow`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    allow: AllowT = Field(description="the value the exception allows beyond the team's limit")
    reason: str = Field(min_length=1, description="why the team needs it")
    approver: str = Field(min_length=1, description="who approved it")
    expires: Day = Field(description="last day (UTC) the exception applies, YYYY-MM-DD")

    def active(self, today: date) -> bool:
        return today <= self.expires


class NamedGrant(BaseModel):
    """A copy of a grant in the `vast-policy-exceptions` block, naming the rule it relaxes."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rule: RuleName = Field(description="the policy the exception relaxes")
    allow: bool | float | str = Field(description="the value it allows, as in that rule's block")
    reason: str = Field(min_length=1)
    approver: str = Field(min_length=1)
    expires: Day

    def active(self, today: date) -> bool:
        return today <= self.expires


class Config(BaseModel):
    """What every block holds: the team it belongs to (see the module docstring for why)."""

    # Infinity as a cap or a budget would mean none, and the engine cannot even parse it (not JSON).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    team: str = Field(pattern=TEAM_NAME.pattern, description="the team this file governs (same in every block)")


class Limited(Config, Generic[AllowT]):
    exceptions: list[Grant[AllowT]] = Field(
        default_factory=list, description="time-boxed exceptions to this rule (copied in vast-policy-exceptions)")

    def active_grants(self, today: date) -> list[Grant[AllowT]]:
        return [grant for grant in self.exceptions if grant.active(today)]


class TeamBindingConfig(Config):
    stacks: list[Word] = Field(min_length=1, description="the stacks this team file may govern")


class GpuAllowListConfig(Limited[GpuName]):
    allowed_gpus: list[GpuName] = Field(
        min_length=1, description="GPU models or families (A100 = any A100); spaces or underscores")

    def effective(self, today: date) -> list[str]:
        return [*self.allowed_gpus, *(g.allow for g in self.active_grants(today))]


class InstanceMaxDphConfig(Limited[Amount]):
    max_dph: Amount = Field(description="$/h cap per instance (GPU + storage), for max_dph and the quote")


class HostMinReliabilityConfig(Limited[Share]):
    min_reliability: Share = Field(default=0.95, description="lowest host reliability allowed")


class VerifiedHostsOnlyConfig(Limited[StrictBool]):
    allow_unverified: StrictBool = Field(default=False, description="true lets instances rent unverified hosts")


class ImageAllowedRegistriesConfig(Limited[Word]):
    allowed_images: list[Word] = Field(
        min_length=1,
        description="'registry/namespace/' allows everything under it; 'namespace/repo' allows that repository",
    )

    def effective(self, today: date) -> list[str]:
        return [*self.allowed_images, *(g.allow for g in self.active_grants(today))]


class DiskMaxSizeConfig(Limited[Amount]):
    max_disk_gb: Amount = Field(description="largest disk_gb per instance")


class MaxInstancesConfig(Limited[Count]):
    max_instances: Count = Field(description="most instances the stack may declare (running or stopped)")


class MaxGpusConfig(Limited[Count]):
    max_gpus: Count = Field(description="most GPUs over all the stack's instances (count x num_gpus)")


class DailyBudgetConfig(Limited[Amount]):
    daily_budget: Amount = Field(description="$ per day: estimated $/h x 24")


class DailyBudgetWarningConfig(Config):
    daily_budget: Amount = Field(description="same as vast-daily-budget.daily_budget")
    warn_share: Annotated[float, Field(gt=0, le=1), BeforeValidator(_json_number)] = Field(
        default=0.8, description="warn from this share of the daily budget")


class MonthlyBudgetConfig(Limited[Amount]):
    monthly_budget: Amount | None = Field(default=None, description="$ per month (x 730 h); null = none")


class MaxHourlyBurnConfig(Limited[Amount]):
    max_hourly_burn: Amount | None = Field(default=None, description="cap on the stack's total $/h; null = none")


def _timezone(value: str) -> str:
    try:
        zone(value)
    except UnknownTimezoneError as err:
        raise ValueError(str(err)) from None
    return value


Timezone = Annotated[str, AfterValidator(_timezone), WithJsonSchema({"type": "string", "pattern": r"^\S+$"})]
WholeMinutes = Annotated[int, Field(ge=1, le=7 * 24 * 60), BeforeValidator(_json_number)]


class ActualSpendConfig(Config):
    timezone: Timezone = Field(
        default="UTC", description="the team's budget windows: days and calendar months in this IANA time zone")


class IdlePolicy(BaseModel):
    """dstack's utilization_policy, for the guard: a GPU under `max_gpu_util` for `minutes` is idle."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_gpu_util: Share = Field(description="a running instance whose gpu_util stays below this fraction ...")
    minutes: WholeMinutes = Field(description="... for this long is idle")
    action: Literal["report", "stop"] = Field(default="report", description="report it, or stop it (disk kept)")


class PrepaidPolicy(BaseModel):
    """Prepaid credit: `vastguard budget allocate` keeps the team's Vast team balance at what is left of the
    period's budget (less the storage its disks will bill by the period's end)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: Literal["day", "month"] = Field(
        default="month", description="month: vast-monthly-budget.monthly_budget; day: vast-daily-budget")
    reclaim: StrictBool = Field(default=True, description="take back what a period left unused")


class BudgetEnforcementConfig(Config):
    action: Literal["alert", "pause"] = Field(
        default="alert", description="at 100% of a budget the guard alerts, or pauses the team (stops its "
                                     "running instances until the window resets)")
    warn_share: Annotated[float, Field(gt=0, le=1), BeforeValidator(_json_number)] = Field(
        default=0.8, description="the guard alerts from this share of a budget")
    idle: IdlePolicy | None = Field(default=None, description="idle GPUs: null = not watched")
    prepaid: PrepaidPolicy | None = Field(default=None, description="prepaid credit mode: null = off")


class PolicyExceptionsConfig(Config):
    exceptions: list[NamedGrant] = Field(
        default_factory=list, description="every exception granted in this file, reported by this policy")


C = TypeVar("C", bound=Config)


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    """Resolve pydantic's `$ref`s: the engine wraps each policy's properties in its own root schema, so
    references to a `$defs` section would dangle."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        # Nested blocks (the guard's `idle`, `prepaid`) mark nothing required either: the rule explains.
        return {k: _inline(v, defs) for k, v in node.items() if k not in ("title", "$defs", "required")}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def config_schema(model: type[BaseModel]) -> PolicyConfigSchema:
    """The block's schema for Pulumi, generated from the model so the two cannot drift (no `required`: see
    the module docstring)."""
    schema = model.model_json_schema()
    properties = _inline(schema["properties"], schema.get("$defs", {}))
    return PolicyConfigSchema(properties=properties)


@dataclass(frozen=True)
class ConfigProblem:
    """A block that is missing or invalid: the rule reports `message` and checks nothing else."""

    message: str


def describe_errors(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(block)"
        msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def load(model: type[C], raw: Mapping[str, Any] | None, *, rule: RuleName, stack: str) -> C | ConfigProblem:
    """The rule's block, or the problem to report. No team named means no team file was applied at all."""
    values = dict(raw or {})
    team = values.get("team")
    if not isinstance(team, str) or not team:
        return ConfigProblem(render(rule, "config-missing", stack=stack))
    try:
        return model.model_validate(values)
    except ValidationError as err:
        return ConfigProblem(render(rule, "config-invalid", team=team, problems=describe_errors(err)))


def active_allows(grants: Iterable[Grant[AllowT]], today: date) -> list[AllowT]:
    return [grant.allow for grant in grants if grant.active(today)]


LEVEL_KEY = "enforcementLevel"


def split_levels(data: Any, *, what: str, bare_all: bool) -> dict[str, Any]:
    """A policy config file's blocks with their `enforcementLevel`s kept aside under `levels`: Pulumi lets a
    block carry its level (and, with `bare_all`, `all` be a bare level), but the blocks validate against exactly
    the properties the pack's rules read. `what` names the file in the error."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} is a JSON object keyed by policy name")
    out: dict[str, Any] = {}
    levels: dict[str, Any] = {}
    for key, value in data.items():
        if bare_all and key == "all":
            out["all"] = value.get(LEVEL_KEY) if isinstance(value, Mapping) else value
        elif isinstance(value, Mapping) and LEVEL_KEY in value:
            levels[key] = value[LEVEL_KEY]
            out[key] = {k: v for k, v in value.items() if k != LEVEL_KEY}
        else:
            out[key] = value
    out["levels"] = levels
    return out
