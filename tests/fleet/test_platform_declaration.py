"""The platform declaration (fleet/platform_declaration.py): the seed is valid, defaults are the least-privilege
keys, and every bad declaration fails with the field named, all problems at once."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import yaml

from engine import repo_root
from fleet.access_fields import canonical_permissions
from fleet.platform_declaration import (
    DEFAULT_KEY_PERMISSIONS,
    PLATFORM_CONFIG,
    PlatformError,
    key_name,
    parse_platform,
    recipients,
)


def seed() -> Any:
    return yaml.safe_load((repo_root() / "stacks" / "Pulumi.platform.yaml").read_text())["config"][PLATFORM_CONFIG]


def problems(raw: Any) -> list[str]:
    with pytest.raises(PlatformError) as err:
        parse_platform("platform", raw)
    assert str(err.value).startswith("stack 'platform': invalid platform declaration (vastguard:platform in "
                                     "stacks/Pulumi.platform.yaml):")
    return err.value.problems


def test_the_seed_declares_three_teams_with_their_roles_members_and_two_keys() -> None:
    platform = parse_platform("platform", seed())
    assert sorted(platform.teams) == ["data-science", "ml-engineering", "ml-research"]
    research = platform.teams["ml-research"]
    assert [r.name for r in research.roles] == ["researcher"]
    assert [(m.email, m.role) for m in research.members] == [("ada@example.com", "researcher"),
                                                             ("grace@example.com", "researcher")]
    assert sorted(research.keys) == ["deploy", "preview"]
    assert research.keys["deploy"].rotated == date(2026, 11, 1) and research.keys["deploy"].max_age_days == 90
    assert len(recipients(platform)) == 6


def test_keys_default_to_least_privilege() -> None:
    team = parse_platform("platform", {"teams": {"vision": {}}}).teams["vision"]
    assert team.vast_name == "vision" and team.initial_credit == 0
    preview, deploy = team.keys["preview"], team.keys["deploy"]
    assert sorted(preview.permissions.grants) == ["billing_read", "instance_read", "misc", "user_read"]
    assert set(deploy.permissions.grants) - set(preview.permissions.grants) == {"instance_write"}
    assert preview.permissions == DEFAULT_KEY_PERMISSIONS["preview"]
    assert (preview.rotation, key_name("vision", "preview", preview.rotation)) == (
        "initial", "vastguard/vision/preview/initial")


def test_bad_declarations_name_the_field() -> None:
    found = problems({"teams": {"ml-research": {
        "roles": [
            {"name": "researcher", "permissions": {"api": {"instance_red": {}}}},
            {"name": "ops", "permissions": {"api": {"instance_write": {
                "api.instance.destroy": {"constraints": {"id": {"lt": 3}}}}}}},
            {"name": "ops", "permissions": {"api": {}}},
            {"name": "manager", "permissions": {"api": {}}},
        ],
        "members": [
            {"email": "ada@example", "role": "member"},
            {"email": "bob@example.com", "role": "owner"},
            {"email": "cy@example.com", "role": "nope"},
            {"email": "Cy@Example.com", "role": "member"},
        ],
        "keys": {"preview": {"ip_allowlist": ["10.0.0.0/8", "not-an-ip"], "rotated": "yesterday"},
                 "admin": {}},
        "initial_credit": -5,
    }}})
    assert found == [
        "teams.ml-research.initial_credit: must be zero or more, in whole cents; got -5",
        "teams.ml-research.roles[0].permissions.api.instance_red: unknown category; Vast's categories are "
        "instance_read, instance_write, user_read, user_write, billing_read, billing_write, machine_read, "
        "machine_write, misc, team_read, team_write",
        "teams.ml-research.roles[1].permissions.api.instance_write.api.instance.destroy.constraints.id.lt: unknown "
        "operator 'lt'; Vast's constraints use eq, lte or gte",
        "teams.ml-research.roles[2].name: duplicate role 'ops' (also teams.ml-research.roles[1])",
        "teams.ml-research.roles[3].name: duplicate role 'manager': Vast's default roles (owner, manager, member) "
        "exist in every team; name a custom role differently",
        "teams.ml-research.members[0].email: not an e-mail address (name@example.com); got 'ada@example'",
        "teams.ml-research.members[1].role: the owner role cannot be given by invitation on Vast (the team's "
        "creator is its owner); use manager, member or a custom role",
        "teams.ml-research.members[2].role: unknown role 'nope'; this team's roles are manager, member",
        "teams.ml-research.members[3].email: cy@example.com is declared twice (also teams.ml-research.members[2])",
        "teams.ml-research.keys.admin: unknown key; a team has exactly two: preview and deploy",
        "teams.ml-research.keys.preview.ip_allowlist[1]: is not an IP address or network (1.2.3.4, 10.0.0.0/8); "
        'got "not-an-ip"',
    ]


@pytest.mark.parametrize(("raw", "expected"), [
    ({"teams": {"ML_Research": {}}}, "teams.ML_Research: a team name is 2-40 lower-case letters"),
    ({"teams": {"a": {}, "b-team": {"vast_name": "a"}}}, "teams.a: a team name"),
    ({"teams": {"x-one": {}, "x-two": {"vast_name": "X-One"}}}, "teams.x-two.vast_name: 'X-One' is also team x-one's"),
    ({"teams": {"vision": {"team_id": "abc"}}}, "teams.vision.team_id: must be the team's numeric id on Vast"),
    ({"teams": {"vision": {"keys": {"deploy": {"max_age_days": 0}}}}},
     "teams.vision.keys.deploy.max_age_days: must be a whole number of days from 1 to 3650"),
    ({"teams": {"vision": {"keys": {"deploy": {"rotated": "2026-13-01"}}}}},
     "teams.vision.keys.deploy.rotated: must be a date YYYY-MM-DD"),
    ({"teams": {"vision": {"roles": [{"name": "r1", "permissions": {"api": {"instance_read": {
        "api.instance.show": {"constraints": {"id": {"eq": "{instance}"}}}}}}}]}}},
     "teams.vision.roles[0].permissions: placeholders (instance) are filled from a key's key_params"),
    ({"teams": {"vision": {"colour": "red"}}}, "teams.vision.colour: unknown field; valid fields: vast_name"),
    ({"tems": {}}, "vastguard:platform.tems: unknown field; valid fields: teams"),
    (["teams"], "vastguard:platform: must be a mapping"),
    ({"teams": {"vision": {"keys": {"preview": {"permissions": "{not json"}}}}},
     "teams.vision.keys.preview.permissions: is not valid JSON"),
])
def test_each_mistake_is_named(raw: Any, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(raw)), problems(raw)


def test_a_document_in_another_key_order_is_the_same_document() -> None:
    a = {"api": {"misc": {}, "instance_read": {"api.instance.show": {"constraints": {"id": {"lte": 9, "gte": 1}}}}}}
    b = {"api": {"instance_read": {"api.instance.show": {"constraints": {"id": {"gte": 1, "lte": 9}}}}, "misc": {}}}
    assert canonical_permissions(a) == canonical_permissions(b)
