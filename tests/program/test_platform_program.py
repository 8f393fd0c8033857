"""The platform program under Pulumi mocks: what it declares per team (only the team until the platform holds a
key inside it), no key in any input, and bad declarations fail with the field named before anything is
declared."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

from fleet.api_key import API_KEY_TYPE
from fleet.team import TEAM_TYPE
from fleet.team_member import TEAM_MEMBER_TYPE
from fleet.team_role import TEAM_ROLE_TYPE

PLATFORM = {"teams": {
    "ml-research": {"initial_credit": 200, "roles": [{"name": "researcher", "permissions": {"api": {
        "instance_read": {}, "instance_write": {}}}}],
        "members": [{"email": "ada@example.com", "role": "researcher"}, {"email": "bob@example.com", "role": "member"}],
        "keys": {"deploy": {"rotated": "2026-11-01", "ip_allowlist": ["203.0.113.0/24"]}}},
    "data-science": {},
}}


class PlatformMocks(Mocks):
    def __init__(self) -> None:
        self.resources: list[MockResourceArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(args)
        state = dict(args.inputs)
        if args.typ == TEAM_TYPE:
            state["team_id"] = 100000 + len(self.resources)
        if args.typ == API_KEY_TYPE:
            state.update(key_id=500000 + len(self.resources), key="the-key", envelope={"ciphertext": "x"})
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def configure(platform: Any, team_keys: dict[str, str] | None = None, **extra: str) -> PlatformMocks:
    mocks = PlatformMocks()
    pulumi.runtime.set_mocks(mocks, project="vastguard", stack="platform", preview=False)
    config = {"vastguard:platform": json.dumps(platform), **extra}
    if team_keys is not None:
        config["vastguard:teamKeys"] = json.dumps(team_keys)
    pulumi.runtime.set_all_config(config)
    return mocks


@pytest.fixture(autouse=True)
def _reset_config() -> Iterator[None]:
    yield
    pulumi.runtime.set_all_config({})


@pulumi.runtime.test  # type: ignore[untyped-decorator]
def test_a_bootstrapped_team_gets_roles_members_and_two_keys_the_others_their_team_only() -> Any:
    mocks = configure(PLATFORM, team_keys={"ml-research": "console-key"})
    from program import main

    declared = main()

    def check(_: Any) -> None:
        by_type: dict[str, list[str]] = {}
        for r in mocks.resources:
            by_type.setdefault(r.typ, []).append(r.name)
        assert sorted(by_type[TEAM_TYPE]) == ["data-science", "ml-research"]
        assert by_type[TEAM_ROLE_TYPE] == ["ml-research-role-researcher"]
        assert sorted(by_type[TEAM_MEMBER_TYPE]) == ["ml-research-member-ada@example.com",
                                                     "ml-research-member-bob@example.com"]
        assert sorted(by_type[API_KEY_TYPE]) == ["ml-research-key-deploy", "ml-research-key-preview"]
        deploy = next(r for r in mocks.resources if r.name == "ml-research-key-deploy")
        assert deploy.inputs["name"] == "vastguard/ml-research/deploy/2026-11-01"
        assert deploy.inputs["recipient"] == "VASTGUARD_DEPLOY_SECRET_ML_RESEARCH"
        assert deploy.inputs["ip_allowlist"] == ["203.0.113.0/24"]
        assert sorted(deploy.inputs["permissions"]["api"]) == ["billing_read", "instance_read", "instance_write",
                                                              "misc", "user_read"]
        # The console's key reaches the providers through configure only: in no resource's inputs.
        assert "console-key" not in json.dumps([r.inputs for r in mocks.resources], default=str)

    return pulumi.Output.all(*[r.urn for r in declared.values()]).apply(check)


def test_a_bad_declaration_fails_before_anything_is_declared() -> None:
    mocks = configure({"teams": {"ml-research": {"members": [{"email": "not-an-address", "role": "member"}],
                                                 "roles": [{"name": "r1", "permissions": {"api": {"x": {}}}}]}}})
    from program import main

    with pytest.raises(pulumi.RunError) as err:
        main()
    text = str(err.value)
    assert "invalid platform declaration" in text
    assert "teams.ml-research.roles[0].permissions.api.x: unknown category" in text
    assert "teams.ml-research.members[0].email: not an e-mail address" in text
    assert mocks.resources == []


def test_a_stack_cannot_be_both_a_teams_and_the_platforms() -> None:
    mocks = configure(PLATFORM, None, **{"vastguard:team": "ml-research"})
    from program import main

    with pytest.raises(pulumi.RunError, match="declares both vastguard:platform and a team's fleet"):
        main()
    assert mocks.resources == []
