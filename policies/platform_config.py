"""The platform rules' configuration (`policies/platform.json`): each block's model, how a rule loads it, and the
whole file validated as one (`PlatformFile`, run by `vastguard team check` and the tests).

Like a team file, every block names what it governs, here the platform stack (`stack`), because Pulumi hands
each policy only its own block: a rule learns from it that the platform file was applied, and the binding rule
denies the file on any other stack. The defaults are the platform's least-privilege baseline; the seed file
writes every one of them out, so a review sees them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleet.access_fields import TeamName, canonical_permissions
from fleet.permissions import CATEGORIES, Category, InvalidPermissions, PermissionSet
from policies.config import EnforcementLevelName, Word, describe_errors, split_levels
from policies.names import PlatformRuleName
from policies.report import render

__all__ = [
    "DEFAULT_CEILING",
    "DEFAULT_KEY_CATEGORIES",
    "PLATFORM_FILE",
    "WRITE_CATEGORIES",
    "KeyIpAllowlistConfig",
    "KeyMaxAgeConfig",
    "KeyPermissionsConfig",
    "MaxOwnersConfig",
    "MemberRolesConfig",
    "PlatformBindingConfig",
    "PlatformConfig",
    "PlatformConfigProblem",
    "PlatformFile",
    "PlatformFileError",
    "RoleCeilingConfig",
    "UndeclaredMembersConfig",
    "load_platform",
    "load_platform_file",
    "parse_platform_file",
]

PLATFORM_FILE = Path(__file__).resolve().parent / "platform.json"
DEFAULT_KEY_CATEGORIES: tuple[Category, ...] = (
    "instance_read", "instance_write", "user_read", "billing_read", "misc", "team_read")
"""What a key given to a team may hold: no billing write (credit transfers), no team or user write (members,
roles, keys, teams), no machine categories (hosting)."""
DEFAULT_CEILING: dict[str, Any] = PermissionSet.of(
    "instance_read", "instance_write", "user_read", "billing_read", "misc", "team_read").to_wire()
"""The most a custom role may grant: what a member needs to run instances and see the team."""
WRITE_CATEGORIES = frozenset(c for c in CATEGORIES if c.endswith("_write"))


class PlatformConfig(BaseModel):
    """What every platform block holds: the platform stack it governs (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    stack: Word = Field(description="the platform stack this file governs (same in every block)")


class PlatformBindingConfig(PlatformConfig):
    pass


class KeyPermissionsConfig(PlatformConfig):
    allowed_categories: list[Category] = Field(
        default_factory=lambda: list(DEFAULT_KEY_CATEGORIES),
        description="permission categories a team's keys may hold (preview keys: none of the *_write ones)")


def _ceiling(value: Any) -> Any:
    try:
        return canonical_permissions(value, where="ceiling")
    except InvalidPermissions as err:
        raise ValueError(str(err)) from None


class RoleCeilingConfig(PlatformConfig):
    ceiling: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_CEILING),
                                    description="the most a custom role may grant (a Vast permission document)")

    _check_ceiling = field_validator("ceiling", mode="before")(_ceiling)

    def document(self) -> PermissionSet:
        return PermissionSet.parse(self.ceiling, where="ceiling")


RoleList = Annotated[list[Annotated[str, Field(min_length=2, max_length=50)]], Field(min_length=1)]


class MemberRolesConfig(PlatformConfig):
    allowed_roles: RoleList = Field(default_factory=lambda: ["member"],
                                    description="roles a member may have in any team not listed in `teams`")
    teams: dict[TeamName, RoleList] = Field(default_factory=dict,
                                            description="per team, the roles its members may have")

    def allowed(self, team: str) -> list[str]:
        return list(self.teams.get(team, self.allowed_roles))


class MaxOwnersConfig(PlatformConfig):
    max_owners: Annotated[int, Field(ge=1, le=100)] = Field(
        default=1, description="most people who can administer a team (its creator included)")
    teams: dict[TeamName, Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=dict, description="per team, its own maximum")

    def limit(self, team: str) -> int:
        return self.teams.get(team, self.max_owners)


class KeyIpAllowlistConfig(PlatformConfig):
    pass


class KeyMaxAgeConfig(PlatformConfig):
    max_age_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        default=90, description="a key older than this is denied until rotated (a key's own max_age_days may be "
                                "lower)")


class UndeclaredMembersConfig(PlatformConfig):
    pass


C = TypeVar("C", bound=PlatformConfig)


@dataclass(frozen=True)
class PlatformConfigProblem:
    message: str


def load_platform(model: type[C], raw: Mapping[str, Any] | None, *, rule: PlatformRuleName,
                  stack: str) -> C | PlatformConfigProblem:
    """The rule's block, or the problem to report; no `stack` means the platform file was not applied."""
    values = dict(raw or {})
    if not isinstance(values.get("stack"), str) or not values["stack"]:
        return PlatformConfigProblem(render(rule, "platform-config-missing", stack=stack))
    try:
        return model.model_validate(values)
    except ValidationError as err:
        return PlatformConfigProblem(render(rule, "platform-config-invalid", stack=stack,
                                            problems=describe_errors(err)))


# --- the whole file -------------------------------------------------------------------------------------------


class PlatformFileError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        body = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid platform policy file:\n{body}")


class PlatformFile(BaseModel):
    """Every block of policies/platform.json, under its policy name."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    levels: dict[str, EnforcementLevelName] = Field(default_factory=dict, exclude=True)
    binding: PlatformBindingConfig = Field(alias=PlatformRuleName.BINDING.value)
    key_permissions: KeyPermissionsConfig = Field(alias=PlatformRuleName.KEY_PERMISSIONS.value)
    role_ceiling: RoleCeilingConfig = Field(alias=PlatformRuleName.ROLE_CEILING.value)
    member_roles: MemberRolesConfig = Field(alias=PlatformRuleName.MEMBER_ROLES.value)
    max_owners: MaxOwnersConfig = Field(alias=PlatformRuleName.MAX_OWNERS.value)
    key_ip_allowlist: KeyIpAllowlistConfig = Field(alias=PlatformRuleName.KEY_IP_ALLOWLIST.value)
    key_max_age: KeyMaxAgeConfig = Field(alias=PlatformRuleName.KEY_MAX_AGE.value)
    undeclared_members: UndeclaredMembersConfig = Field(alias=PlatformRuleName.UNDECLARED_MEMBERS.value)

    @model_validator(mode="before")
    @classmethod
    def _split_levels(cls, data: Any) -> Any:
        return split_levels(data, what="the platform file", bare_all=False)

    @model_validator(mode="after")
    def _same_stack(self) -> PlatformFile:
        stack = self.binding.stack
        wrong = [name for name, block in self.blocks().items() if block.stack != stack]
        if wrong:
            raise ValueError("; ".join(f"{name}.stack is {self.blocks()[name].stack!r} but "
                                       f"{PlatformRuleName.BINDING.value}.stack is {stack!r}" for name in wrong))
        unknown_roles = [r for r in self.member_roles.allowed_roles if r == "owner"]
        if unknown_roles:
            raise ValueError("vast-platform-member-roles: the owner role cannot be given to a member on Vast")
        return self

    def blocks(self) -> dict[str, PlatformConfig]:
        return {str(PlatformFile.model_fields[name].alias): getattr(self, name)
                for name in PlatformFile.model_fields if name != "levels"}

    @property
    def stack(self) -> str:
        return self.binding.stack


def parse_platform_file(raw: Any, *, source: str = "platform file") -> PlatformFile:
    try:
        return PlatformFile.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"]) or "(file)"
            if e["type"] == "extra_forbidden" and len(e["loc"]) == 1:
                problems.append(f"{where}: not a platform policy; valid keys: "
                                f"{', '.join(r.value for r in PlatformRuleName)}")
            elif e["type"] == "missing" and len(e["loc"]) == 1:
                problems.append(f"{where}: block missing (see policies/README.md, Platform rules)")
            else:
                problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
        raise PlatformFileError(source, problems) from None


def load_platform_file(path: Path = PLATFORM_FILE) -> PlatformFile:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise PlatformFileError(str(path), ["no such file"]) from None
    except json.JSONDecodeError as err:
        raise PlatformFileError(str(path), [f"not valid JSON: {err}"]) from None
    return parse_platform_file(raw, source=str(path))

