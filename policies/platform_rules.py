"""The platform stack's rules: least privilege for the Vast access the platform hands out (one function per
policy, and `PLATFORM_RULES`, where they are registered with name, description and level). Configured by
`policies/platform.json` (policies/platform_config.py); messages in policies/report.py.

Resource rules judge each access resource's inputs after `check`; stack rules judge them all together
(outputs, and for a resource about to change, the inputs the engine echoes). Every value goes through
`policies.access` (unknown at preview is the worst case: an unknown document could grant anything).

Which rules apply where: these judge only stacks that declare access resources, and the fleet rules
(policies/rules.py) skip a stack that holds access resources and no instance. So the platform stack
previewed with a team's file, or a team's stack that declares access objects, is denied (its rules find no
config), and a team stack previewed with the platform's file is denied by the fleet rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeVar

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, StackValidationArgs

from fleet.permissions import PermissionSet
from policies.access import AccessView, KeyView, MemberView, RoleView, TeamView, is_access_type
from policies.instances import Unknown, current_stack, utc_today
from policies.names import PlatformRuleName
from policies.platform_config import (
    WRITE_CATEGORIES,
    KeyIpAllowlistConfig,
    KeyMaxAgeConfig,
    KeyPermissionsConfig,
    MaxOwnersConfig,
    MemberRolesConfig,
    PlatformBindingConfig,
    PlatformConfig,
    PlatformConfigProblem,
    RoleCeilingConfig,
    UndeclaredMembersConfig,
    load_platform,
)
from policies.report import listing, render
from policies.rules import ResourceRule, StackRule

__all__ = ["PLATFORM_RULES", "PlatformRule"]

C = TypeVar("C", bound=PlatformConfig)
V = TypeVar("V", bound=AccessView)
ADMIN_ROLES = ("owner", "manager")
ADMIN_PERMISSION = "team_write"


def _config(model: type[C], rule: PlatformRuleName, args: ResourceValidationArgs | StackValidationArgs,
            stack: str, report: ReportViolation) -> C | None:
    config = load_platform(model, args.get_config(), rule=rule, stack=stack)
    if isinstance(config, PlatformConfigProblem):
        report(config.message, None)
        return None
    return config


def _resource_and_config(view: Callable[..., V | None], model: type[C], rule: PlatformRuleName,
                         args: ResourceValidationArgs, report: ReportViolation) -> tuple[V, C] | None:
    """The resource's view and the rule's block; None (after reporting a config problem) when there is nothing
    more to check. Other resource types are not the rule's and are skipped before the config is read."""
    found = view(resource_type=args.resource_type, name=args.name, urn=args.urn, props=args.props)
    if found is None:
        return None
    config = _config(model, rule, args, found.stack, report)
    return None if config is None else (found, config)


@dataclass(frozen=True)
class _Stack:
    stack: str
    keys: list[KeyView]
    roles: list[RoleView]
    members: list[MemberView]
    teams: list[TeamView]


def _stack(args: StackValidationArgs) -> _Stack | None:
    """The stack's access resources by kind; None when it has none (not the platform's to judge)."""
    resources = [r for r in args.resources if is_access_type(r.resource_type)]
    if not resources:
        return None
    keys = [k for r in resources if (k := KeyView.of(resource_type=r.resource_type, name=r.name, urn=r.urn,
                                                       props=r.props))]
    roles = [v for r in resources if (v := RoleView.of(resource_type=r.resource_type, name=r.name, urn=r.urn,
                                                       props=r.props))]
    members = [m for r in resources if (m := MemberView.of(resource_type=r.resource_type, name=r.name, urn=r.urn,
                                                           props=r.props))]
    teams = [t for r in resources if (t := TeamView.of(resource_type=r.resource_type, name=r.name, urn=r.urn,
                                                       props=r.props))]
    return _Stack(stack=current_stack(r.urn for r in args.resources), keys=keys, roles=roles, members=members,
                  teams=teams)


def _team(view: KeyView | RoleView | MemberView | TeamView) -> str:
    return view.team if isinstance(view.team, str) else "(unknown team)"


# ---------------------------------------------------------------------------------------------------------
# Resource rules
# ---------------------------------------------------------------------------------------------------------


def key_permissions(args: ResourceValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """A team's keys hold only the categories the platform allows (by default no billing, team or user write and
    no machine categories), and a preview key no write category at all."""
    rule = PlatformRuleName.KEY_PERMISSIONS
    loaded = _resource_and_config(KeyView.of, KeyPermissionsConfig, rule, args, report)
    if loaded is None:
        return
    key, config = loaded
    kind = key.kind if isinstance(key.kind, str) else "(unknown kind)"
    fields = {"team": _team(key), "kind": kind, "stack": key.stack, "limit": listing(config.allowed_categories)}
    if not isinstance(key.permissions, PermissionSet):
        report(render(rule, "unknown", **fields), None)
        return
    for category in key.permissions.grants:
        if category not in config.allowed_categories:
            report(render(rule, "not-allowed", permission=category, **fields), None)
        elif kind != "deploy" and category in WRITE_CATEGORIES:
            report(render(rule, "preview-write", permission=category, **fields), None)


def role_ceiling(args: ResourceValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """A custom role grants nothing beyond the platform's ceiling (a role is what a member's own keys can do)."""
    rule = PlatformRuleName.ROLE_CEILING
    loaded = _resource_and_config(RoleView.of, RoleCeilingConfig, rule, args, report)
    if loaded is None:
        return
    role, config = loaded
    ceiling = config.document()
    fields = {"team": _team(role), "role": role.role if isinstance(role.role, str) else args.name,
              "stack": role.stack, "limit": listing(f"api.{c}" for c in ceiling.grants)}
    if not isinstance(role.permissions, PermissionSet):
        report(render(rule, "unknown", **fields), None)
        return
    for beyond in role.permissions.exceeds(ceiling):
        report(render(rule, "beyond", permission=beyond, **fields), None)


def member_roles(args: ResourceValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """Members hold only the roles the platform allows for their team."""
    rule = PlatformRuleName.MEMBER_ROLES
    loaded = _resource_and_config(MemberView.of, MemberRolesConfig, rule, args, report)
    if loaded is None:
        return
    member, config = loaded
    team = _team(member)
    allowed = config.allowed(team)
    if not isinstance(member.role, str) or member.role not in allowed:
        role = member.role if isinstance(member.role, str) else "unknown at preview"
        report(render(rule, "not-allowed", team=team, email=member.email, role=role, stack=member.stack,
                      limit=listing(allowed)), None)


def key_ip_allowlist(args: ResourceValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """A key usable from any address is a key anyone who copies it can use; advisory unless the platform file
    makes it mandatory (`"enforcementLevel": "mandatory"`)."""
    rule = PlatformRuleName.KEY_IP_ALLOWLIST
    loaded = _resource_and_config(KeyView.of, KeyIpAllowlistConfig, rule, args, report)
    if loaded is None:
        return
    key, _config_block = loaded
    if isinstance(key.ip_allowlist, list) and key.ip_allowlist:
        return
    report(render(rule, "missing", team=_team(key), kind=key.kind, stack=key.stack), None)


# ---------------------------------------------------------------------------------------------------------
# Stack rules
# ---------------------------------------------------------------------------------------------------------


def platform_binding(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """The platform file governs one stack: applied to any other stack that declares access, it denies."""
    rule = PlatformRuleName.BINDING
    found = _stack(args)
    if found is None:
        return
    config = _config(PlatformBindingConfig, rule, args, found.stack, report)
    if config is not None and config.stack != found.stack:
        report(render(rule, "stack-not-governed", stack=found.stack, limit=config.stack), None)


def _administers(member: MemberView, roles: dict[tuple[str, str], PermissionSet | Unknown | None]) -> bool:
    if not isinstance(member.role, str):
        return True  # unknown at preview: the worst case
    if member.role in ADMIN_ROLES:
        return True
    document = roles.get((_team(member), member.role))
    if isinstance(document, PermissionSet):
        return ADMIN_PERMISSION in document.grants
    return isinstance(document, Unknown)


def max_owners(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """At most N people per team can administer it (invite and remove members, change roles): its creator, and
    every member in the owner or manager role or a custom role granting team_write."""
    rule = PlatformRuleName.MAX_OWNERS
    found = _stack(args)
    if found is None:
        return
    config = _config(MaxOwnersConfig, rule, args, found.stack, report)
    if config is None:
        return
    roles = {(_team(r), r.role): r.permissions for r in found.roles if isinstance(r.role, str)}
    by_team: dict[str, list[MemberView]] = {}
    for member in found.members:
        if _administers(member, roles):
            by_team.setdefault(_team(member), []).append(member)
    for team, admins in sorted(by_team.items()):
        limit = config.limit(team)
        if 1 + len(admins) > limit:
            detail = ", ".join(f"{m.email} ({m.role if isinstance(m.role, str) else 'unknown role'})" for m in admins)
            report(render(rule, "too-many", team=team, value=1 + len(admins), permission=ADMIN_PERMISSION,
                          detail=detail, stack=found.stack, limit=limit), None)


def _created(key: KeyView) -> date | None:
    if isinstance(key.created_at, float):
        return datetime.fromtimestamp(key.created_at, UTC).date()
    if isinstance(key.rotation, str):
        try:
            return date.fromisoformat(key.rotation)
        except ValueError:
            return None
    return None


def key_max_age(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """A key older than its maximum age (the platform's, or the key's own if lower) is denied until rotated:
    age from Vast's creation time of the key, else from its declared rotation date."""
    rule = PlatformRuleName.KEY_MAX_AGE
    found = _stack(args)
    if found is None:
        return
    config = _config(KeyMaxAgeConfig, rule, args, found.stack, report)
    if config is None:
        return
    day = today or utc_today()
    for key in found.keys:
        created = _created(key)
        if created is None:
            continue
        limit = min(config.max_age_days, key.max_age_days if isinstance(key.max_age_days, int) else 10**6)
        age = (day - created).days
        if age > limit:
            report(render(rule, "too-old", team=_team(key), kind=key.kind, key_id=key.key_id, value=age, limit=limit,
                          today=day.isoformat(), stack=found.stack), key.urn)


def undeclared_members(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """Every member Vast lists in a team (at the last refresh) is declared: someone invited outside the platform
    stack (the console, the CLI) is denied until declared or removed."""
    rule = PlatformRuleName.UNDECLARED_MEMBERS
    found = _stack(args)
    if found is None:
        return
    config = _config(UndeclaredMembersConfig, rule, args, found.stack, report)
    if config is None:
        return
    declared = {(_team(m), m.email.lower()) for m in found.members if isinstance(m.email, str)}
    for team in found.teams:
        if not isinstance(team.members, list):
            continue
        for member in team.members:
            if member.role == "owner" or member.user_id == team.owner_id:
                continue
            if (_team(team), (member.email or "").lower()) not in declared:
                report(render(rule, "undeclared", team=_team(team), email=member.email or f"user {member.user_id}",
                              role=member.role or "unknown", user_id=member.user_id, stack=found.stack), team.urn)


# ---------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformRule:
    """One platform policy, registered like a fleet rule (policies.rules.Rule), with its own names and blocks."""

    name: PlatformRuleName
    description: str
    level: EnforcementLevel
    config: type[PlatformConfig]
    resource: ResourceRule | None = None
    stack: StackRule | None = None


MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

PLATFORM_RULES: Sequence[PlatformRule] = (
    PlatformRule(PlatformRuleName.BINDING,
                 "Denies a stack declaring Vast access unless the platform file governing it is applied.",
                 MANDATORY, PlatformBindingConfig, stack=platform_binding),
    PlatformRule(PlatformRuleName.KEY_PERMISSIONS,
                 "Allows team keys only the platform's permission categories, and preview keys no write.",
                 MANDATORY, KeyPermissionsConfig, resource=key_permissions),
    PlatformRule(PlatformRuleName.ROLE_CEILING,
                 "Keeps every custom role within the platform's permission ceiling.",
                 MANDATORY, RoleCeilingConfig, resource=role_ceiling),
    PlatformRule(PlatformRuleName.MEMBER_ROLES,
                 "Allows members only the roles the platform allows for their team.",
                 MANDATORY, MemberRolesConfig, resource=member_roles),
    PlatformRule(PlatformRuleName.MAX_OWNERS,
                 "Caps the people who can administer each team (owner, manager, team_write roles).",
                 MANDATORY, MaxOwnersConfig, stack=max_owners),
    PlatformRule(PlatformRuleName.KEY_IP_ALLOWLIST,
                 "Warns about team keys without an IP allow-list (mandatory when the platform file says so).",
                 ADVISORY, KeyIpAllowlistConfig, resource=key_ip_allowlist),
    PlatformRule(PlatformRuleName.KEY_MAX_AGE,
                 "Denies a platform change while any team key is older than its maximum age, until it is rotated.",
                 MANDATORY, KeyMaxAgeConfig, stack=key_max_age),
    PlatformRule(PlatformRuleName.UNDECLARED_MEMBERS,
                 "Denies members Vast lists in a team that the platform does not declare.",
                 MANDATORY, UndeclaredMembersConfig, stack=undeclared_members),
)

PLATFORM_RULES_BY_NAME = {rule.name: rule for rule in PLATFORM_RULES}

