"""A team file (`policies/teams/<team>.json`): the whole `--policy-pack-config` of one team, validated as one.

The pack sees each block separately (see `policies.config`), so it cannot notice that two blocks disagree.
This model can: it requires every block, forbids unknown keys (a misspelt policy name would otherwise be
ignored by the engine and the rule would run on defaults), and checks the repeated values agree: the same team
in every block, the file named after that team, the warning's copy of the daily budget, and the copies of
the exceptions in `vast-policy-exceptions`. `vastguard team check` and the tests run it over every file.

The format is Pulumi's policy-config format unchanged: a JSON object keyed by policy name, each value an
object of that policy's properties plus an optional `enforcementLevel`, and an optional `all` (a level, or
an object with `enforcementLevel`) that sets every policy's level first.

Run `python -m policies.teamfile [FILE ...]` to check files (default: all of policies/teams/).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from policies.bids import BidCapConfig, InterruptibleRequiredConfig, OnDemandGpuShareConfig
from policies.config import (
    LEVEL_KEY,
    ActualSpendConfig,
    BudgetEnforcementConfig,
    Config,
    DailyBudgetConfig,
    DailyBudgetWarningConfig,
    DiskMaxSizeConfig,
    EnforcementLevelName,
    GpuAllowListConfig,
    HostMinReliabilityConfig,
    ImageAllowedRegistriesConfig,
    InstanceMaxDphConfig,
    Limited,
    MaxGpusConfig,
    MaxHourlyBurnConfig,
    MaxInstancesConfig,
    MonthlyBudgetConfig,
    NamedGrant,
    PolicyExceptionsConfig,
    TeamBindingConfig,
    VerifiedHostsOnlyConfig,
    split_levels,
)
from policies.names import RuleName

__all__ = ["TEAMS_DIR", "TEMPLATE", "TeamFile", "TeamFileError", "load_team_file", "parse_team_file"]

TEAMS_DIR = Path(__file__).resolve().parent / "teams"
TEMPLATE = TEAMS_DIR / "_template.json"
_LEVELS = ("advisory", "mandatory", "remediate", "disabled")


class TeamFileError(ValueError):
    """An invalid team file; the message lists every problem, each prefixed with the file."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: invalid team file:\n{body}")


def _grant_key(rule: RuleName | str, allow: object, grant: Any) -> tuple[object, ...]:
    """Compare grants across blocks: a JSON `true` must not equal `1`, and `6` must equal `6.0`."""
    typed = ("bool", allow) if isinstance(allow, bool) else (
        ("number", float(allow)) if isinstance(allow, int | float) else ("text", allow))
    return (str(rule), *typed, grant.reason, grant.approver, grant.expires)


class TeamFile(BaseModel):
    """Every block of a team file, under its policy name (the JSON keys are the policy names)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    all_level: EnforcementLevelName | None = Field(default=None, alias="all")
    levels: dict[RuleName, EnforcementLevelName] = Field(default_factory=dict, exclude=True)

    team_binding: TeamBindingConfig = Field(alias=RuleName.TEAM_BINDING.value)
    gpu_allow_list: GpuAllowListConfig = Field(alias=RuleName.GPU_ALLOW_LIST.value)
    instance_max_dph: InstanceMaxDphConfig = Field(alias=RuleName.INSTANCE_MAX_DPH.value)
    host_min_reliability: HostMinReliabilityConfig = Field(alias=RuleName.HOST_MIN_RELIABILITY.value)
    verified_hosts_only: VerifiedHostsOnlyConfig = Field(alias=RuleName.VERIFIED_HOSTS_ONLY.value)
    image_allowed_registries: ImageAllowedRegistriesConfig = Field(alias=RuleName.IMAGE_ALLOWED_REGISTRIES.value)
    disk_max_size: DiskMaxSizeConfig = Field(alias=RuleName.DISK_MAX_SIZE.value)
    max_instances: MaxInstancesConfig = Field(alias=RuleName.MAX_INSTANCES.value)
    max_gpus: MaxGpusConfig = Field(alias=RuleName.MAX_GPUS.value)
    daily_budget: DailyBudgetConfig = Field(alias=RuleName.DAILY_BUDGET.value)
    daily_budget_warning: DailyBudgetWarningConfig = Field(alias=RuleName.DAILY_BUDGET_WARNING.value)
    monthly_budget: MonthlyBudgetConfig = Field(alias=RuleName.MONTHLY_BUDGET.value)
    max_hourly_burn: MaxHourlyBurnConfig = Field(alias=RuleName.MAX_HOURLY_BURN.value)
    interruptible_required: InterruptibleRequiredConfig = Field(alias=RuleName.INTERRUPTIBLE_REQUIRED.value)
    bid_cap: BidCapConfig = Field(alias=RuleName.BID_CAP.value)
    on_demand_gpu_share: OnDemandGpuShareConfig = Field(alias=RuleName.ON_DEMAND_GPU_SHARE.value)
    policy_exceptions: PolicyExceptionsConfig = Field(alias=RuleName.POLICY_EXCEPTIONS.value)
    actual_spend: ActualSpendConfig = Field(alias=RuleName.ACTUAL_SPEND.value)
    budget_enforcement: BudgetEnforcementConfig = Field(alias=RuleName.BUDGET_ENFORCEMENT.value)

    @model_validator(mode="before")
    @classmethod
    def _split_levels(cls, data: Any) -> Any:
        return split_levels(data, what="a team file", bare_all=True)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        team = self.team_binding.team
        for rule, block in self.blocks().items():
            if block.team != team:
                problems.append(f"{rule}.team is {block.team!r} but vast-team-binding.team is {team!r}")
        if self.daily_budget_warning.daily_budget != self.daily_budget.daily_budget:
            problems.append(
                f"vast-daily-budget-warning.daily_budget ({self.daily_budget_warning.daily_budget:g}) differs "
                f"from vast-daily-budget.daily_budget ({self.daily_budget.daily_budget:g}); make them equal")
        prepaid = self.budget_enforcement.prepaid
        if prepaid is not None and prepaid.period == "month" and self.monthly_budget.monthly_budget is None:
            problems.append("vast-budget-enforcement.prepaid.period is month but vast-monthly-budget.monthly_budget "
                            "is null: set a monthly budget, or use period day (the daily budget)")
        granted = {_grant_key(rule, g.allow, g) for rule, g in self.rule_grants()}
        listed = {_grant_key(g.rule, g.allow, g) for g in self.policy_exceptions.exceptions}
        for key in sorted(granted - listed, key=str):
            problems.append(f"the exception to {key[0]} allowing {key[2]!r} (expires {key[5]}) is missing from "
                            "vast-policy-exceptions.exceptions; copy it there so previews report it")
        for key in sorted(listed - granted, key=str):
            problems.append(f"vast-policy-exceptions lists an exception to {key[0]} allowing {key[2]!r} "
                            f"(expires {key[5]}) that the {key[0]} block does not grant; add it there or remove it")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def team(self) -> str:
        return self.team_binding.team

    @property
    def stacks(self) -> list[str]:
        return list(self.team_binding.stacks)

    def blocks(self) -> dict[RuleName, Config]:
        return {RuleName(TeamFile.model_fields[name].alias or name): getattr(self, name)
                for name in TeamFile.model_fields if name not in ("all_level", "levels")}

    def rule_grants(self) -> Iterator[tuple[RuleName, Any]]:
        for rule, block in self.blocks().items():
            if isinstance(block, Limited):
                for grant in block.exceptions:
                    yield rule, grant

    def expired(self, today: date) -> list[NamedGrant]:
        return [g for g in self.policy_exceptions.exceptions if not g.active(today)]

    def to_json(self) -> dict[str, Any]:
        """The file's JSON: `all` first, then blocks in registry order, `team` first and `exceptions` last in
        each, empty exception lists left out of rule blocks (they only add noise)."""
        out: dict[str, Any] = {}
        if self.all_level is not None:
            out["all"] = self.all_level
        for rule, block in self.blocks().items():
            body: dict[str, Any] = {}
            if rule in self.levels:
                body[LEVEL_KEY] = self.levels[rule]
            dumped = block.model_dump(mode="json")
            body["team"] = dumped.pop("team")
            exceptions = dumped.pop("exceptions", None)
            body.update({k: _tidy(v) for k, v in dumped.items()})
            if exceptions or rule == RuleName.POLICY_EXCEPTIONS:
                body["exceptions"] = _tidy(exceptions or [])
            out[rule.value] = body
        return out

    def dumps(self) -> str:
        return _format(self.to_json()) + "\n"


def _format(value: Any, indent: int = 0) -> str:
    """JSON with one block per paragraph and short values on one line: `"stacks": ["ml-research"]` reads
    better in review than json.dumps(indent=2)'s one item per line."""
    pad = "  " * (indent + 1)
    if isinstance(value, dict) and indent < 2 and value:
        items = [f"{pad}{json.dumps(k)}: {_format(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        items = [f"{pad}{json.dumps(v)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(value)


def _tidy(value: Any) -> Any:
    """200.0 -> 200 so files read as people write them (JSON numbers have no int/float distinction)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    return value


def _problems(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        where = ".".join(loc) or "(file)"
        if e["type"] == "extra_forbidden" and len(loc) == 1:
            valid = ", ".join(["all", *(r.value for r in RuleName)])
            out.append(f"{where}: not a vastguard policy; valid keys: {valid}")
        elif e["type"] == "extra_forbidden":
            out.append(f"{where}: unknown field")
        elif e["type"] == "missing" and len(loc) == 1:
            out.append(f"{where}: block missing; copy it from policies/teams/_template.json")
        elif e["type"] == "value_error" and not loc:
            out.extend(str(e["ctx"]["error"]).split("\n"))
        else:
            out.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return out


def parse_team_file(raw: Any, *, source: str = "team file", expect_team: str | None = None) -> TeamFile:
    """Validate parsed JSON; raise TeamFileError listing every problem."""
    levels: list[str] = []
    if isinstance(raw, Mapping):
        levels = [f"{key}.{LEVEL_KEY}: must be one of {', '.join(_LEVELS)}" for key, value in raw.items()
                  if isinstance(value, Mapping) and value.get(LEVEL_KEY) not in (None, *_LEVELS)]
    try:
        parsed = TeamFile.model_validate(raw)
    except ValidationError as err:
        # A bad level is reported above in the file's own terms, not as the internal `levels` field.
        raise TeamFileError(source, levels + [p for p in _problems(err) if not p.startswith("levels.")]) from None
    if levels:
        raise TeamFileError(source, levels)
    if expect_team is not None and parsed.team != expect_team:
        raise TeamFileError(source, [
            f"the file is named for team {expect_team!r} but its blocks name team {parsed.team!r}; "
            f"rename the file to policies/teams/{parsed.team}.json or fix the team"])
    return parsed


def load_team_file(path: Path) -> TeamFile:
    """Read and validate a team file; a file named `<team>.json` must govern that team (`_*.json` are
    templates and may name any team)."""
    source = str(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise TeamFileError(source, ["no such file; create it with `vastguard team add <team>`"]) from None
    except json.JSONDecodeError as err:
        raise TeamFileError(source, [f"not valid JSON: {err}"]) from None
    expect = None if path.stem.startswith("_") else path.stem
    return parse_team_file(raw, source=source, expect_team=expect)


def check_files(paths: Sequence[Path], *, today: date | None = None, out: Any = None) -> int:
    """Validate files, print one line per file (and its problems); 0 when all are valid."""
    out = out or sys.stdout
    failures = 0
    for path in paths:
        try:
            team_file = load_team_file(path)
        except TeamFileError as err:
            failures += 1
            print(err, file=out)
            continue
        notes = [f"exception to {g.rule} expired on {g.expires}" for g in team_file.expired(today or date.today())]
        print(f"{path}: ok (team {team_file.team}, stacks {', '.join(team_file.stacks)})"
              + ("".join(f"\n  - note: {n}" for n in notes)), file=out)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    paths = [Path(a) for a in args] or sorted(TEAMS_DIR.glob("*.json"))
    return check_files(paths)


if __name__ == "__main__":
    sys.exit(main())
