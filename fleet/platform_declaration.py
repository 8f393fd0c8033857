"""The platform declaration: who can do what on Vast, per team, read from the platform stack's config.

    config:
      vastguard:platform:
        teams:
          ml-research:
            vast_name: ml-research          # the team's name on Vast (default: the team's)
            initial_credit: 200             # $ moved from the owner's personal credit when the team is created
            team_id: 100002                 # optional: adopt a team made in Vast's console
            roles:                          # custom roles (owner, manager and member always exist)
              - name: researcher
                permissions: {api: {instance_read: {}, instance_write: {}, user_read: {}, misc: {}}}
            members:
              - {email: ada@example.com, role: researcher}
            keys:                           # the team's two scoped keys (both always exist)
              preview: {rotated: 2026-11-01}          # default: instance_read, misc, user_read, billing_read
              deploy: {rotated: 2026-11-01, ip_allowlist: [203.0.113.0/24], max_age_days: 90}

Every error names the stack and the field (`teams.ml-research.roles[0].permissions.api.instance_red: unknown
category`), so a typo is fixed in one look; nothing is declared from an invalid declaration. Pure: the program
(program/platform_program.py) turns it into resources, the pack judges those (policies/platform_rules.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fleet.access_fields import DEFAULT_ROLES, EMAIL, KEY_KINDS, OWNER_ROLE, KeyKind, recipient_env
from fleet.declaration import TEAM_NAME
from fleet.permissions import InvalidPermissions, KeyParams, PermissionSet

__all__ = [
    "DEFAULT_KEY_PERMISSIONS",
    "KeySpec",
    "MemberSpec",
    "Platform",
    "PlatformError",
    "RoleSpec",
    "TeamAccess",
    "key_name",
    "missing_team_key",
    "parse_platform",
    "set_team_key_command",
]

PLATFORM_CONFIG = "vastguard:platform"
TEAM_KEYS_CONFIG = "vastguard:teamKeys"
"""Per team, the key the owner made inside the team in Vast's console (a secret object: the bootstrap keys)."""
KEY_FROM_CONFIG = "vastguard:keyFrom"
"""In a team stack: the platform stack whose envelopes deliver its keys (e.g. `platform`)."""


def set_team_key_command(team: str) -> str:
    """How the platform stores a team's bootstrap key (it prompts, or reads stdin; never the key in argv)."""
    return f"pulumi config set --secret --path '{TEAM_KEYS_CONFIG}.{team}'"


def missing_team_key(team: str) -> str:
    return (f"no key inside team {team}: Vast makes the first key of a team only in its console. Switch to team "
            f"{team} in the console (cloud.vast.ai), create an API key there (Keys, Create), then store it with "
            f"`{set_team_key_command(team)} --stack <platform stack>` (it prompts; never in argv) and run "
            "`pulumi up` again")


DEFAULT_KEY_PERMISSIONS: Mapping[KeyKind, PermissionSet] = {
    # Preview: list and search, read the account and its charges (the budget rules read spend), write nothing.
    "preview": PermissionSet.of("instance_read", "misc", "user_read", "billing_read"),
    # Deploy: the same plus renting, changing and releasing instances, and nothing else.
    "deploy": PermissionSet.of("instance_read", "instance_write", "misc", "user_read", "billing_read"),
}
ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{1,49}$")
MAX_TEAMS, MAX_ROLES, MAX_MEMBERS = 200, 50, 500


class PlatformError(ValueError):
    """An invalid platform declaration; the message lists every problem with its field."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.stack = stack
        self.problems = problems
        body = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"stack {stack!r}: invalid platform declaration ({PLATFORM_CONFIG} in "
                         f"stacks/Pulumi.{stack}.yaml):\n{body}")


class RoleSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    permissions: PermissionSet


class MemberSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    email: str
    role: str


class KeySpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: KeyKind
    permissions: PermissionSet
    ip_allowlist: tuple[str, ...] = ()
    rotated: date | None = None
    max_age_days: int | None = None

    @property
    def rotation(self) -> str:
        return self.rotated.isoformat() if self.rotated else "initial"


class TeamAccess(BaseModel):
    model_config = ConfigDict(frozen=True)

    team: str
    vast_name: str
    initial_credit: Decimal = Decimal(0)
    team_id: int | None = None
    roles: tuple[RoleSpec, ...] = ()
    members: tuple[MemberSpec, ...] = ()
    keys: dict[KeyKind, KeySpec] = Field(default_factory=dict)

    def role_permissions(self, name: str) -> PermissionSet | None:
        """A custom role's document (None for Vast's default roles)."""
        return next((r.permissions for r in self.roles if r.name == name), None)


class Platform(BaseModel):
    model_config = ConfigDict(frozen=True)

    stack: str
    teams: dict[str, TeamAccess]


def key_name(team: str, kind: KeyKind, rotation: str) -> str:
    """The key's name on Vast: whose, what for, which rotation (`vastguard/ml-research/deploy/2026-11-01`)."""
    return f"vastguard/{team}/{kind}/{rotation}"


_TEAM_FIELDS = ("vast_name", "initial_credit", "team_id", "roles", "members", "keys")
_KEY_FIELDS = ("permissions", "ip_allowlist", "rotated", "max_age_days")


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.items.append(f"{where}: {problem}")


def _mapping(value: Any, where: str, problems: _Problems, example: str) -> Mapping[str, Any] | None:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add(where, f"must be a mapping such as {example}; got {type(value).__name__}")
        return None
    return value


def _unknown_fields(raw: Mapping[str, Any], allowed: tuple[str, ...], where: str, problems: _Problems) -> None:
    for name in raw:
        if name not in allowed:
            problems.add(f"{where}.{name}", f"unknown field; valid fields: {', '.join(allowed)}")


def _permissions(raw: Any, where: str, problems: _Problems) -> PermissionSet | None:
    try:
        document = PermissionSet.parse(raw, where=where)
    except InvalidPermissions as err:
        problems.add(err.field, err.problem)
        return None
    if document.placeholders():
        problems.add(where, f"placeholders ({', '.join(sorted(document.placeholders()))}) are filled from a key's "
                            "key_params, which the platform does not set: write the values")
        return None
    return document


def _credit(raw: Any, where: str, problems: _Problems) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        problems.add(where, f"must be an amount of dollars such as 200; got {raw!r}")
        return Decimal(0)
    try:
        amount = Decimal(str(raw))
    except InvalidOperation:
        problems.add(where, f"must be an amount of dollars such as 200; got {raw!r}")
        return Decimal(0)
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        problems.add(where, f"must be zero or more, in whole cents; got {raw!r}")
        return Decimal(0)
    return amount


def _date(raw: Any, where: str, problems: _Problems) -> date | None:
    if raw is None:
        return None
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        problems.add(where, f"must be a date YYYY-MM-DD (the day the key was last rotated); got {raw!r}")
        return None


def _roles(raw: Any, where: str, problems: _Problems) -> list[RoleSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add(where, "must be a list of {name, permissions}")
        return []
    if len(raw) > MAX_ROLES:
        problems.add(where, f"declares {len(raw)} roles; at most {MAX_ROLES}")
        return []
    roles: list[RoleSpec] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            problems.add(here, "must be a mapping with name and permissions")
            continue
        _unknown_fields(item, ("name", "permissions"), here, problems)
        name = item.get("name")
        if not isinstance(name, str) or not ROLE_NAME.fullmatch(name):
            problems.add(f"{here}.name", f"a role name is 2-50 letters, digits, spaces, '.', '_' or '-'; got {name!r}")
            continue
        if name.lower() in DEFAULT_ROLES:
            problems.add(f"{here}.name", f"duplicate role {name!r}: Vast's default roles (owner, manager, member) "
                                         "exist in every team; name a custom role differently")
            continue
        if name.lower() in seen:
            problems.add(f"{here}.name", f"duplicate role {name!r} (also {where}[{seen[name.lower()]}])")
            continue
        seen[name.lower()] = index
        if "permissions" not in item:
            problems.add(f"{here}.permissions", 'is required, e.g. {"api": {"instance_read": {}}}')
            continue
        document = _permissions(item["permissions"], f"{here}.permissions", problems)
        if document is not None:
            roles.append(RoleSpec(name=name, permissions=document))
    return roles


def _members(raw: Any, where: str, roles: list[RoleSpec], problems: _Problems) -> list[MemberSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add(where, "must be a list of {email, role}")
        return []
    if len(raw) > MAX_MEMBERS:
        problems.add(where, f"declares {len(raw)} members; at most {MAX_MEMBERS}")
        return []
    known = [*DEFAULT_ROLES, *(r.name for r in roles)]
    members: list[MemberSpec] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            problems.add(here, "must be a mapping with email and role")
            continue
        _unknown_fields(item, ("email", "role"), here, problems)
        email, role = item.get("email"), item.get("role")
        if not isinstance(email, str) or not EMAIL.fullmatch(email.strip()):
            problems.add(f"{here}.email", f"not an e-mail address (name@example.com); got {email!r}")
            continue
        email = email.strip().lower()
        if email in seen:
            problems.add(f"{here}.email", f"{email} is declared twice (also {where}[{seen[email]}])")
            continue
        seen[email] = index
        if role == OWNER_ROLE:
            problems.add(f"{here}.role", "the owner role cannot be given by invitation on Vast (the team's creator "
                                         "is its owner); use manager, member or a custom role")
            continue
        if not isinstance(role, str) or role not in known:
            problems.add(f"{here}.role", f"unknown role {role!r}; this team's roles are "
                                         f"{', '.join(r for r in known if r != OWNER_ROLE)}")
            continue
        members.append(MemberSpec(email=email, role=role))
    return members


def _keys(raw: Any, where: str, problems: _Problems) -> dict[KeyKind, KeySpec]:
    declared = _mapping(raw, where, problems, "{preview: {...}, deploy: {...}}")
    if declared is None:
        return {}
    for name in declared:
        if name not in KEY_KINDS:
            problems.add(f"{where}.{name}", "unknown key; a team has exactly two: preview and deploy")
    keys: dict[KeyKind, KeySpec] = {}
    for kind in KEY_KINDS:
        here = f"{where}.{kind}"
        spec = _mapping(declared.get(kind), here, problems, "{rotated: 2026-11-01}")
        if spec is None:
            continue
        _unknown_fields(spec, _KEY_FIELDS, here, problems)
        permissions = DEFAULT_KEY_PERMISSIONS[kind]
        if "permissions" in spec:
            parsed = _permissions(spec["permissions"], f"{here}.permissions", problems)
            if parsed is None:
                continue
            permissions = parsed
        try:
            allow = KeyParams.parse({"ip_whitelist": spec.get("ip_allowlist") or []},
                                    where=f"{here}").ip_whitelist
        except InvalidPermissions as err:
            problems.add(err.field.replace("ip_whitelist", "ip_allowlist"), err.problem)
            continue
        age = spec.get("max_age_days")
        if age is not None and (isinstance(age, bool) or not isinstance(age, int) or not 1 <= age <= 3650):
            problems.add(f"{here}.max_age_days", f"must be a whole number of days from 1 to 3650; got {age!r}")
            continue
        keys[kind] = KeySpec(kind=kind, permissions=permissions, ip_allowlist=allow,
                             rotated=_date(spec.get("rotated"), f"{here}.rotated", problems), max_age_days=age)
    return keys


def _team(name: str, raw: Any, where: str, problems: _Problems) -> TeamAccess | None:
    spec = _mapping(raw, where, problems, "{roles: [...], members: [...], keys: {...}}")
    if spec is None:
        return None
    _unknown_fields(spec, _TEAM_FIELDS, where, problems)
    vast_name = spec.get("vast_name", name)
    if not isinstance(vast_name, str) or not 1 <= len(vast_name.strip()) <= 128:
        problems.add(f"{where}.vast_name", f"must be a name of 1 to 128 characters; got {vast_name!r}")
        vast_name = name
    team_id = spec.get("team_id")
    if team_id is not None and (isinstance(team_id, bool) or not isinstance(team_id, int) or team_id <= 0):
        problems.add(f"{where}.team_id", f"must be the team's numeric id on Vast; got {team_id!r}")
        team_id = None
    credit = _credit(spec.get("initial_credit", 0), f"{where}.initial_credit", problems)
    roles = _roles(spec.get("roles"), f"{where}.roles", problems)
    members = _members(spec.get("members"), f"{where}.members", roles, problems)
    keys = _keys(spec.get("keys"), f"{where}.keys", problems)
    return TeamAccess(team=name, vast_name=vast_name.strip(), initial_credit=credit, team_id=team_id,
                      roles=tuple(roles), members=tuple(members), keys=keys)


def parse_platform(stack: str, raw: Any) -> Platform:
    """Validate `vastguard:platform` (already parsed from YAML/JSON); PlatformError lists every problem."""
    problems = _Problems()
    declared = _mapping(raw, PLATFORM_CONFIG, problems, "{teams: {ml-research: {...}}}")
    teams: dict[str, TeamAccess] = {}
    if declared is not None:
        _unknown_fields(declared, ("teams",), PLATFORM_CONFIG, problems)
        listed = _mapping(declared.get("teams"), "teams", problems, "{ml-research: {...}}")
        if listed is not None and len(listed) > MAX_TEAMS:
            problems.add("teams", f"declares {len(listed)} teams; at most {MAX_TEAMS}")
            listed = None
        vast_names: dict[str, str] = {}
        for name, spec in (listed or {}).items():
            where = f"teams.{name}"
            if not isinstance(name, str) or not TEAM_NAME.fullmatch(name):
                problems.add(where, "a team name is 2-40 lower-case letters, digits and dashes, starting with a "
                                    "letter (it names the team's stack and policy file)")
                continue
            team = _team(name, spec, where, problems)
            if team is None:
                continue
            clash = vast_names.get(team.vast_name.lower())
            if clash is not None:
                problems.add(f"{where}.vast_name", f"{team.vast_name!r} is also team {clash}'s name on Vast; team "
                                                   "names are unique on Vast")
                continue
            vast_names[team.vast_name.lower()] = name
            teams[name] = team
    if problems.items:
        raise PlatformError(stack, problems.items)
    return Platform(stack=stack, teams=teams)


def recipients(platform: Platform) -> list[str]:
    """Every recipient secret the platform job needs (two per team)."""
    return [recipient_env(team, kind) for team in platform.teams for kind in KEY_KINDS]
