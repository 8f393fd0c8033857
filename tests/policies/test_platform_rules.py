"""The platform rules (policies/platform_rules.py) called directly with the SDK's own args and the seed
policies/platform.json: each rule denies what it must, names team, object, permission and fix, and passes the
seed declaration; the fleet rules and the platform rules each leave the other kind of stack alone."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest
import yaml
from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.proxy import UNKNOWN_OBJECT_VALUE, unknown_checking_proxy

from engine import repo_root
from fleet.access_fields import recipient_env
from fleet.api_key import API_KEY_TYPE, ApiKeyInputs
from fleet.platform_declaration import PLATFORM_CONFIG, key_name, parse_platform
from fleet.team import TEAM_TYPE
from fleet.team_member import TEAM_MEMBER_TYPE
from fleet.team_role import TEAM_ROLE_TYPE
from policies import platform_rules, rules
from policies.names import PlatformRuleName
from policies.platform_config import PlatformFileError, load_platform_file, parse_platform_file
from policies.report import pattern
from tests.policies.fakes import _options, block, collect, messages, stack_args, urn

TODAY = date(2026, 12, 2)
PLATFORM = json.loads((repo_root() / "policies" / "platform.json").read_text())
STACK = "platform"


def config(rule: PlatformRuleName, **changes: Any) -> dict[str, Any]:
    return {**PLATFORM[rule.value], **changes}


def key(team: str = "ml-research", kind: str = "deploy", *, permissions: Any = None, **changes: Any) -> dict[str, Any]:
    props = ApiKeyInputs(
        team=team, kind=kind, name=key_name(team, kind, "2026-11-01"), rotation="2026-11-01",  # type: ignore[arg-type]
        permissions=permissions or {"api": {"instance_read": {}, "instance_write": {}, "misc": {}, "user_read": {},
                                            "billing_read": {}}},
        recipient=recipient_env(team, kind),  # type: ignore[arg-type]
    ).model_dump(mode="json")
    props.update(changes)
    return props


def role(team: str, name: str, permissions: Any) -> dict[str, Any]:
    return {"team": team, "team_id": 100002, "name": name, "permissions": permissions}


def member(team: str, email: str, role_name: str) -> dict[str, Any]:
    return {"team": team, "team_id": 100002, "email": email, "role": role_name}


def resource_args(props: Mapping[str, Any], rule_config: Mapping[str, Any], type_: str, name: str = "r",
                  stack: str = STACK) -> ResourceValidationArgs:
    return ResourceValidationArgs(type_, unknown_checking_proxy(dict(props)), urn(stack, name, type_), name,
                                  _options(), None, dict(rule_config))


def platform_stack(resources: Sequence[tuple[str, str, Mapping[str, Any]]], rule_config: Mapping[str, Any], *,
                   stack: str = STACK) -> StackValidationArgs:
    """A stack of access resources (type, name, props) after the Stack resource, as the engine sends it."""
    stack_type = "pulumi:pulumi:Stack"
    listed = [PolicyResource(stack_type, unknown_checking_proxy({}), urn(stack, f"vastguard-{stack}", stack_type),
                             f"vastguard-{stack}", _options(), None, None, [], {})]
    for type_, name, props in resources:
        listed.append(PolicyResource(type_, unknown_checking_proxy(dict(props)), urn(stack, name, type_), name,
                                     _options(), None, None, [], {}))
    return StackValidationArgs(listed, dict(rule_config))


def seed_resources() -> list[tuple[str, str, dict[str, Any]]]:
    """The seed declaration as the program declares it (inputs)."""
    raw = yaml.safe_load((repo_root() / "stacks" / "Pulumi.platform.yaml").read_text())["config"][PLATFORM_CONFIG]
    found: list[tuple[str, str, dict[str, Any]]] = []
    for name, team in parse_platform(STACK, raw).teams.items():
        found.append((TEAM_TYPE, name, {"team": name, "vast_name": team.vast_name, "team_id": 100002,
                                        "members": [], "owner_id": 100001}))
        found += [(TEAM_ROLE_TYPE, f"{name}-role-{r.name}", role(name, r.name, r.permissions.to_wire()))
                  for r in team.roles]
        found += [(TEAM_MEMBER_TYPE, f"{name}-member-{m.email}", member(name, m.email, m.role)) for m in team.members]
        found += [(API_KEY_TYPE, f"{name}-key-{kind}", key(name, kind, permissions=spec.permissions.to_wire(),
                                                           max_age_days=spec.max_age_days))
                  for kind, spec in team.keys.items()]
    return found


def test_the_seed_passes_every_mandatory_platform_rule() -> None:
    resources = seed_resources()
    found = []
    for rule in platform_rules.PLATFORM_RULES:
        if rule.level.value != "mandatory":
            continue
        if rule.resource is not None:
            for type_, name, props in resources:
                found += collect(rule.resource, resource_args(props, config(rule.name), type_, name), today=TODAY)
        elif rule.stack is not None:
            found += collect(rule.stack, platform_stack(resources, config(rule.name)), today=TODAY)
    assert messages(found) == []


def test_a_team_key_with_billing_write_is_denied_naming_team_key_permission_and_fix() -> None:
    rule = PlatformRuleName.KEY_PERMISSIONS
    props = key(permissions={"api": {"instance_read": {}, "billing_write": {}, "machine_read": {}}})
    found = messages(collect(platform_rules.key_permissions,
                             resource_args(props, config(rule), API_KEY_TYPE, "ml-research-key-deploy")))
    assert found == [
        "ml-research: deploy key: permission billing_write is not allowed on keys given to teams (allowed: "
        "instance_read, instance_write, user_read, billing_read, misc, team_read); remove it from "
        "teams.ml-research.keys.deploy.permissions in stacks/Pulumi.platform.yaml",
        "ml-research: deploy key: permission machine_read is not allowed on keys given to teams (allowed: "
        "instance_read, instance_write, user_read, billing_read, misc, team_read); remove it from "
        "teams.ml-research.keys.deploy.permissions in stacks/Pulumi.platform.yaml"]


def test_a_preview_key_carries_no_write_category() -> None:
    rule = PlatformRuleName.KEY_PERMISSIONS
    props = key(kind="preview", permissions={"api": {"instance_read": {}, "instance_write": {}}})
    found = messages(collect(platform_rules.key_permissions, resource_args(props, config(rule), API_KEY_TYPE)))
    assert len(found) == 1 and pattern(rule, "preview-write", team="ml-research", permission="instance_write")\
        .search(found[0])
    unknown = {**key(), "permissions": UNKNOWN_OBJECT_VALUE}
    assert pattern(rule, "unknown", team="ml-research").search(
        messages(collect(platform_rules.key_permissions, resource_args(unknown, config(rule), API_KEY_TYPE)))[0])


def test_a_role_widened_past_the_ceiling_is_denied() -> None:
    rule = PlatformRuleName.ROLE_CEILING
    props = role("ml-research", "researcher", {"api": {"instance_read": {}, "team_write": {}, "billing_write": {}}})
    found = messages(collect(platform_rules.role_ceiling, resource_args(props, config(rule), TEAM_ROLE_TYPE)))
    assert [pattern(rule, "beyond", team="ml-research", role="researcher", permission=p).search(m) is not None
            for m, p in zip(found, ["api.team_write", "api.billing_write"], strict=True)] == [True, True]
    assert "narrow the role's permissions in teams.ml-research.roles" in found[0]
    # A ceiling narrowed to endpoints: a role with the whole category is beyond it.
    narrow = config(rule, ceiling={"api": {"instance_read": {"api.instance.show": {}}}})
    whole = role("ml-research", "viewer", {"api": {"instance_read": {}}})
    assert "api.instance_read (all of it" in messages(collect(
        platform_rules.role_ceiling, resource_args(whole, narrow, TEAM_ROLE_TYPE)))[0]


def test_members_only_in_the_roles_allowed_for_their_team() -> None:
    rule = PlatformRuleName.MEMBER_ROLES
    ok = member("ml-research", "ada@example.com", "researcher")
    assert collect(platform_rules.member_roles, resource_args(ok, config(rule), TEAM_MEMBER_TYPE)) == []
    wrong = member("data-science", "dana@example.com", "researcher")  # not allowed outside ml-research
    found = messages(collect(platform_rules.member_roles, resource_args(wrong, config(rule), TEAM_MEMBER_TYPE)))
    assert found == ["data-science: member dana@example.com: role researcher is not allowed in team data-science "
                     "(allowed: member); give them one of those in teams.data-science.members of "
                     "stacks/Pulumi.platform.yaml, or allow the role for data-science in policies/platform.json"]


def test_a_second_owner_beyond_the_limit_is_denied() -> None:
    rule = PlatformRuleName.MAX_OWNERS
    resources = [
        (TEAM_ROLE_TYPE, "r", role("ml-research", "admin", {"api": {"team_write": {}, "team_read": {}}})),
        (TEAM_MEMBER_TYPE, "m1", member("ml-research", "ada@example.com", "researcher")),
        (TEAM_MEMBER_TYPE, "m2", member("ml-research", "lead@example.com", "manager")),
        (TEAM_MEMBER_TYPE, "m3", member("ml-research", "ops@example.com", "admin")),
    ]
    found = messages(collect(platform_rules.max_owners, platform_stack(resources, config(rule))))
    assert found == [
        "ml-research: 3 people can administer team ml-research (permission team_write: the creator and "
        "lead@example.com (manager), ops@example.com (admin)), more than the limit of 1; give fewer members the "
        "owner-like roles (manager, or a role granting team_write) in teams.ml-research.members of "
        "stacks/Pulumi.platform.yaml, or raise max_owners for ml-research in policies/platform.json"]
    raised = config(rule, teams={"ml-research": 3})
    assert collect(platform_rules.max_owners, platform_stack(resources, raised)) == []


def test_a_key_without_an_ip_allow_list_is_reported() -> None:
    rule = PlatformRuleName.KEY_IP_ALLOWLIST
    assert pattern(rule, "missing", team="ml-research", kind="deploy").search(messages(collect(
        platform_rules.key_ip_allowlist, resource_args(key(), config(rule), API_KEY_TYPE)))[0])
    fenced = key(ip_allowlist=["203.0.113.0/24"])
    assert collect(platform_rules.key_ip_allowlist, resource_args(fenced, config(rule), API_KEY_TYPE)) == []
    assert next(r for r in platform_rules.PLATFORM_RULES if r.name == rule).level.value == "advisory"


def test_a_key_older_than_its_maximum_age_is_denied_until_rotated() -> None:
    rule = PlatformRuleName.KEY_MAX_AGE
    created = datetime(2026, 8, 1, tzinfo=UTC).timestamp()
    old = [(API_KEY_TYPE, "k", key(key_id=500007, created_at=created))]
    found = messages(collect(platform_rules.key_max_age, platform_stack(old, config(rule)), today=TODAY))
    assert found == ["ml-research: deploy key #500007 is 123 days old, beyond its maximum age of 90 days; rotate "
                     "it: set teams.ml-research.keys.deploy.rotated: 2026-12-02 in stacks/Pulumi.platform.yaml (the "
                     "new key is made and delivered before the old one is revoked)"]
    # The key's own maximum is lower; without Vast's creation time the declared rotation date counts.
    own = [(API_KEY_TYPE, "k", key(key_id=1, rotation="2026-11-01", max_age_days=30))]
    assert "beyond its maximum age of 30 days" in messages(collect(
        platform_rules.key_max_age, platform_stack(own, config(rule)), today=TODAY))[0]
    rotated = [(API_KEY_TYPE, "k", key(key_id=2, rotation=TODAY.isoformat()))]  # a key being replaced today
    assert collect(platform_rules.key_max_age, platform_stack(rotated, config(rule)), today=TODAY) == []


def test_a_member_vast_lists_but_the_platform_does_not_declare_is_denied() -> None:
    rule = PlatformRuleName.UNDECLARED_MEMBERS
    team = {"team": "ml-research", "vast_name": "ml-research", "team_id": 100002, "owner_id": 100001, "members": [
        {"user_id": 100001, "email": "platform@example.com", "role": "owner"},
        {"user_id": 100005, "email": "ada@example.com", "role": "researcher"},
        {"user_id": 100009, "email": "mallory@example.com", "role": "manager"}]}
    resources = [(TEAM_TYPE, "ml-research", team),
                 (TEAM_MEMBER_TYPE, "m", member("ml-research", "ada@example.com", "researcher"))]
    found = collect(platform_rules.undeclared_members, platform_stack(resources, config(rule)))
    assert messages(found) == [
        "ml-research: mallory@example.com is a member of team ml-research with role manager, but the platform "
        "declares no such member (added outside the platform stack); declare them in teams.ml-research.members "
        "of stacks/Pulumi.platform.yaml, or remove them from the team (`vastai remove member 100009` with the "
        "team's key)"]
    assert found[0].urn is not None and found[0].urn.endswith("::ml-research")


def test_without_the_platform_file_every_platform_rule_denies_a_stack_with_access_resources() -> None:
    resources = seed_resources()
    judged = {PlatformRuleName.KEY_PERMISSIONS: API_KEY_TYPE, PlatformRuleName.KEY_IP_ALLOWLIST: API_KEY_TYPE,
              PlatformRuleName.ROLE_CEILING: TEAM_ROLE_TYPE, PlatformRuleName.MEMBER_ROLES: TEAM_MEMBER_TYPE}
    for rule in platform_rules.PLATFORM_RULES:
        if rule.stack is not None:
            found = messages(collect(rule.stack, platform_stack(resources, {})))
        else:
            assert rule.resource is not None
            type_, name, props = next(r for r in resources if r[0] == judged[rule.name])
            found = messages(collect(rule.resource, resource_args(props, {}, type_, name)))
        assert found and pattern(rule.name, "platform-config-missing", stack=STACK).search(found[0]), rule.name


def test_the_platform_file_governs_only_its_own_stack() -> None:
    rule = PlatformRuleName.BINDING
    found = messages(collect(platform_rules.platform_binding,
                             platform_stack(seed_resources(), config(rule), stack="platform-staging")))
    assert found == ["policies/platform.json governs platform stack platform, not stack platform-staging; preview "
                     "stack platform-staging with its own platform file, or set the stack of every block of "
                     "policies/platform.json to platform-staging"]


def test_each_kind_of_stack_is_judged_only_by_its_own_rules() -> None:
    # A team's stack (instances, no access resources): the platform rules have nothing to judge.
    team_stack = stack_args({}, {}, stack="ml-research")
    for rule in platform_rules.PLATFORM_RULES:
        if rule.stack is not None:
            assert collect(rule.stack, team_stack) == []
    # The platform stack (access resources, no instances): the fleet rules skip it, even without a team file...
    access_only = platform_stack(seed_resources(), {})
    for fleet_rule in rules.RULES:
        if fleet_rule.stack is not None:
            assert collect(fleet_rule.stack, access_only) == [], fleet_rule.name
    # ...but a stack holding an instance is judged by the fleet rules whatever else it declares: no team file,
    # denied.
    instance = stack_args({"train-0": {"team": "ml-research"}}, block(None, rules.RULES[0].name), stack="platform")
    assert collect(rules.team_binding, instance)


def test_the_seed_platform_file_is_valid_and_its_mistakes_are_named() -> None:
    assert load_platform_file().stack == "platform"
    broken = {**PLATFORM, "vast-platform-max-owners": {"stack": "other", "max_owners": 0},
              "vast-platform-typo": {"stack": "platform"}}
    del broken["vast-platform-binding"]
    with pytest.raises(PlatformFileError) as err:
        parse_platform_file(broken, source="platform.json")
    text = str(err.value)
    assert "vast-platform-binding: block missing" in text
    assert "vast-platform-max-owners.max_owners: Input should be greater than or equal to 1" in text
    assert "vast-platform-typo: not a platform policy; valid keys: vast-platform-binding" in text
    mixed = {**PLATFORM, "vast-platform-max-owners": {"stack": "other"}}
    with pytest.raises(PlatformFileError, match=r"vast-platform-max-owners\.stack is 'other' but "
                                                r"vast-platform-binding\.stack is 'platform'"):
        parse_platform_file(mixed, source="platform.json")
    bad_ceiling = {**PLATFORM, "vast-platform-role-ceiling": {"stack": "platform", "ceiling": {"api": {"x": {}}}}}
    with pytest.raises(PlatformFileError, match=r"ceiling\.api\.x: unknown category"):
        parse_platform_file(bad_ceiling, source="platform.json")


def test_the_served_pack_makes_the_allow_list_mandatory_when_the_platform_file_says_so() -> None:
    """Advisory by default, mandatory by config: Pulumi's own `enforcementLevel` in policies/platform.json."""
    from tests.policies.harness import AnalyzerProcess, Resource

    unfenced = Resource("ml-research-key-deploy", key(), STACK, type=API_KEY_TYPE)
    with AnalyzerProcess(stack=STACK) as pack:
        pack.configure(PLATFORM)
        assert [(d.policy, d.level) for d in pack.analyze(unfenced)] == [
            ("vast-platform-key-ip-allowlist", "advisory")]
        strict = {**PLATFORM, "vast-platform-key-ip-allowlist": {
            **PLATFORM["vast-platform-key-ip-allowlist"], "enforcementLevel": "mandatory"}}
        pack.configure(strict)
        assert [(d.policy, d.level) for d in pack.analyze(unfenced)] == [
            ("vast-platform-key-ip-allowlist", "mandatory")]
        fenced = Resource("ml-research-key-deploy", key(ip_allowlist=["203.0.113.0/24"]), STACK, type=API_KEY_TYPE)
        assert pack.analyze(fenced) == []
