"""Declare every team's Vast access from the platform stack's config (stacks/Pulumi.platform.yaml).

Per team: its `vastai:Team`; once the platform holds a key inside the team (`vastguard:teamKeys.<team>`, made in
Vast's console: Vast offers no API for a team's first key), its custom roles, members and the two scoped keys.
A team without that key yet gets only its team, and the run says what to do. Exports the envelopes each team's
jobs open (`key_envelopes.<team>.<kind>`, ciphertext only) and a summary without any key.
"""

from __future__ import annotations

from typing import Any

import pulumi

from fleet.access_fields import DEFAULT_ROLES, recipient_env
from fleet.api_key import ApiKeyInputs
from fleet.platform_declaration import PlatformError, TeamAccess, key_name, missing_team_key, parse_platform
from fleet.team import TeamInputs
from fleet.team_member import TeamMemberInputs
from fleet.team_role import TeamRoleInputs
from providers.vast_api_key import ApiKey
from providers.vast_team import Team
from providers.vast_team_member import TeamMember
from providers.vast_team_role import TeamRole


def _bootstrapped(config: pulumi.Config) -> set[str]:
    """The teams whose key inside the team is configured. Only the names are read: the keys themselves reach
    the providers through `configure`, never the program's outputs."""
    raw = config.get_object("teamKeys")
    return {str(team) for team, key in raw.items() if key} if isinstance(raw, dict) else set()


def _declare(access: TeamAccess, team: Team) -> dict[str, Any]:
    name = access.team
    roles = {role.name: TeamRole(f"{name}-role-{role.name}", TeamRoleInputs(
        team=name, name=role.name, permissions=role.permissions.to_wire()), team_id=team.team_id)
        for role in access.roles}
    members = []
    for member in access.members:
        role = roles.get(member.role)
        members.append(TeamMember(
            f"{name}-member-{member.email}", TeamMemberInputs(team=name, email=member.email, role=member.role),
            team_id=team.team_id, role=role.name if role is not None else None))
    keys = {}
    for kind, spec in access.keys.items():
        keys[kind] = ApiKey(f"{name}-key-{kind}", ApiKeyInputs(
            team=name, kind=kind, name=key_name(name, kind, spec.rotation), permissions=spec.permissions.to_wire(),
            ip_allowlist=list(spec.ip_allowlist), rotation=spec.rotation, max_age_days=spec.max_age_days,
            recipient=recipient_env(name, kind)), team_id=team.team_id)
    return {"roles": roles, "members": members, "keys": keys}


def run() -> dict[str, pulumi.CustomResource]:
    """Declare every team's access; returns each resource by its name (for tests to wait on)."""
    stack = pulumi.get_stack()
    config = pulumi.Config("vastguard")
    try:
        platform = parse_platform(stack, config.get_object("platform"))
    except PlatformError as err:
        raise pulumi.RunError(str(err)) from None
    bootstrapped = _bootstrapped(config)
    teams: dict[str, Team] = {}
    declared_all: dict[str, pulumi.CustomResource] = {}
    envelopes: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    pending: list[str] = []
    for name, access in sorted(platform.teams.items()):
        team = teams[name] = Team(name, TeamInputs(team=name, vast_name=access.vast_name,
                                                   initial_credit=float(access.initial_credit),
                                                   adopt_team_id=access.team_id))
        entry: dict[str, Any] = {"team_id": team.team_id, "vast_name": access.vast_name,
                                 "roles": [*DEFAULT_ROLES, *(r.name for r in access.roles)],
                                 "members": {m.email: m.role for m in access.members}}
        if name not in bootstrapped:
            pending.append(name)
            pulumi.log.warn(f"{name}: only the team is declared until the platform holds a key inside it; "
                            f"{missing_team_key(name)}")
            summary[name] = {**entry, "bootstrapped": False}
            continue
        declared = _declare(access, team)
        declared_all.update({r.pulumi_resource_name: r for r in [*declared["roles"].values(), *declared["members"],
                                                   *declared["keys"].values()]})
        envelopes[name] = {kind: key.envelope for kind, key in declared["keys"].items()}
        summary[name] = {**entry, "bootstrapped": True,
                         "keys": {kind: {"key_id": key.key_id, "rotation": access.keys[kind].rotation}
                                  for kind, key in declared["keys"].items()}}
    pulumi.export("platform", True)
    pulumi.export("teams", summary)
    pulumi.export("key_envelopes", envelopes)
    pulumi.export("pending_bootstrap", pending)
    return {**teams, **declared_all}
