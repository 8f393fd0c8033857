"""The access providers' methods (vastai:Team, TeamRole, TeamMember, ApiKey) called directly against the emulator
over real HTTP (no engine): create, read (out-of-band changes show), update, delete (already gone is fine),
adoption, the bootstrap key's checks, and the key's envelope. tests/e2e/test_platform.py runs them through the
engine."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
from pulumi.runtime import rpc

from emulator import EmulatorServer
from emulator.testing import Control, EmulatorAccount, EmulatorTeam, make_account, make_team, make_team_key
from fleet.access_fields import recipient_env
from fleet.api_key import ApiKeyInputs
from fleet.envelope import Envelope, SealedFor, open_envelope
from fleet.platform_declaration import DEFAULT_KEY_PERMISSIONS, key_name
from fleet.team_member import INVITATION_TTL
from providers.access import AccessSettings, access_settings_from
from providers.host import ProviderError
from providers.vast_api_key import VastApiKeyProvider
from providers.vast_team import VastTeamProvider
from providers.vast_team_member import VastTeamMemberProvider
from providers.vast_team_role import VastTeamRoleProvider
from vastclient import AuthError, OfferQuery, VastClient

TEAM = "ml-research"
PREVIEW = DEFAULT_KEY_PERMISSIONS["preview"].to_wire()
DEPLOY = DEFAULT_KEY_PERMISSIONS["deploy"].to_wire()
RESEARCHER: dict[str, Any] = {"api": {"instance_read": {}, "instance_write": {}, "misc": {}, "user_read": {}}}


@dataclass
class World:
    emulator: EmulatorServer
    owner: EmulatorAccount
    settings: AccessSettings
    env: dict[str, str] = field(repr=False)  # secrets: never in a failure report
    team_id: int = 0
    team_key: str = field(default="", repr=False)

    def client(self, key: str | None = None) -> VastClient:
        return VastClient(api_key=key or self.team_key, base_url=self.emulator.url)

    def configured(self, provider: Any) -> Any:
        provider._access = self.settings
        return provider


@pytest.fixture
def world(emulator: EmulatorServer) -> World:
    owner = make_account(emulator, balance=500, username="platform")
    env = {recipient_env(TEAM, kind): secrets.token_urlsafe(32) for kind in ("preview", "deploy")}
    return World(emulator, owner, AccessSettings(personal_key=owner.api_key, base_url=emulator.url), env)


def bootstrapped(world: World) -> World:
    """The team exists (made by the provider), and the console's key inside it is configured."""
    team = world.configured(VastTeamProvider())
    created = team.create({"team": TEAM, "vast_name": TEAM, "initial_credit": 50})
    world.team_id = int(created.id)
    world.team_key = make_team_key(world.emulator, EmulatorTeam(id=world.team_id, name=TEAM, owner_id=world.owner.id))
    world.settings = AccessSettings(personal_key=world.owner.api_key, base_url=world.emulator.url,
                                    team_keys={TEAM: world.team_key})
    return world


def test_team_keys_come_from_the_stack_config_as_a_secret_object() -> None:
    config = {"vastai:apiKey": "personal-key", "vastguard:teamKeys": '{"ml-research": "team-key", "empty": " "}'}
    settings = access_settings_from(config.get, {})
    assert settings.team_keys == {"ml-research": "team-key"} and settings.personal_key == "personal-key"
    assert "team-key" not in repr(settings) and "personal-key" not in repr(settings)
    with pytest.raises(Exception, match=r"vastguard:teamKeys must map each team to its key"):
        access_settings_from({"vastguard:teamKeys": '["x"]'}.get, {})


def test_a_team_is_created_with_the_personal_key_and_read_with_its_own(world: World) -> None:
    team = world.configured(VastTeamProvider())
    check = team.check({}, {"team": TEAM, "vast_name": TEAM, "initial_credit": 50})
    assert check.failures == []
    created = team.create(check.inputs)
    team_id = int(created.id)
    assert created.outs["bootstrapped"] is False and created.outs["owner_id"] == world.owner.id
    assert Control(world.emulator.url).account(team_id)["balance"] == 50  # the credit moved in
    world.team_key = make_team_key(world.emulator, EmulatorTeam(id=team_id, name=TEAM, owner_id=world.owner.id))
    world.settings = AccessSettings(personal_key=world.owner.api_key, base_url=world.emulator.url,
                                    team_keys={TEAM: world.team_key})
    read = world.configured(VastTeamProvider()).read(created.id, created.outs)
    assert read.outs["bootstrapped"] is True
    assert [(m["user_id"], m["role"]) for m in read.outs["members"]] == [(world.owner.id, "owner")]
    assert read.outs["roles"] == ["manager", "member", "owner"]
    # A change of name on Vast replaces the team; its credit moves only at creation.
    diff = team.diff(created.id, created.outs, {**created.outs, "initial_credit": 99})
    assert diff.changes is False
    assert team.diff(created.id, created.outs, {**created.outs, "vast_name": "research"}).replaces == ["vast_name"]


def test_a_bootstrap_key_made_in_another_team_is_refused_before_anything_changes(world: World) -> None:
    world = bootstrapped(world)
    other = world.configured(VastTeamProvider()).create({"team": "data-science", "vast_name": "data-science"})
    wrong = AccessSettings(personal_key=world.owner.api_key, base_url=world.emulator.url,
                           team_keys={"data-science": world.team_key})  # ml-research's key under data-science
    role = VastTeamRoleProvider()
    role._access = wrong
    with pytest.raises(ProviderError, match=r"the key in vastguard:teamKeys\.data-science acts in Vast account \d+, "
                                            r"not in team data-science"):
        role.create({"team": "data-science", "team_id": int(other.id), "name": "ops", "permissions": RESEARCHER})
    assert [r.name for r in world.client().list_roles()] == ["manager", "member"]


def test_without_a_team_key_the_error_says_how_to_make_one(world: World) -> None:
    role = world.configured(VastTeamRoleProvider())
    with pytest.raises(ProviderError, match=r"no key inside team ml-research: .*console.*"
                                            r"pulumi config set --secret --path 'vastguard:teamKeys\.ml-research'"):
        role.create({"team": TEAM, "team_id": 1, "name": "researcher", "permissions": RESEARCHER})


def test_a_team_with_instances_is_not_deleted_and_the_error_says_why(world: World) -> None:
    world = bootstrapped(world)
    deploy = world.client().create_api_key("deploy", permissions=DEPLOY)
    with world.client(deploy.key.get_secret_value()) as vast:
        offer = vast.search_offers(OfferQuery(gpu_names="RTX 3090", disk_gb=16, limit=1))[0]
        instance = vast.create_instance(offer.id, image="pytorch/pytorch", disk_gb=16, label="busy")
    team = world.configured(VastTeamProvider())
    props = {"team": TEAM, "vast_name": TEAM}
    with pytest.raises(ProviderError, match=r"still has instances: destroy the team's stack first "
                                            r"\(`vastguard team remove ml-research`"):
        team.delete(str(world.team_id), props)
    world.client().destroy(instance)
    team.delete(str(world.team_id), props)
    assert world.emulator.market.state.accounts[world.team_id].deleted_at is not None


def test_a_role_is_adopted_read_back_as_vast_has_it_restored_and_deleted(world: World) -> None:
    world = bootstrapped(world)
    role = world.configured(VastTeamRoleProvider())
    props = {"team": TEAM, "team_id": world.team_id, "name": "researcher", "permissions": RESEARCHER}
    checked = role.check({}, props)
    assert checked.failures == []
    created = role.create(checked.inputs)
    assert world.client().get_role("researcher").permissions.to_wire() == RESEARCHER
    # Widened in the console: a refresh reads it back, as outputs and inputs, and the diff shows it.
    world.client().update_role(int(created.id), permissions={"api": {**RESEARCHER["api"], "billing_write": {}}})
    read = role.read(created.id, created.outs)
    assert "billing_write" in read.outs["permissions"]["api"] and read.inputs is not None
    assert "billing_write" in read.inputs["permissions"]["api"]
    diff = role.diff(created.id, read.outs, checked.inputs)
    assert diff.changes and diff.replaces == []
    restored = role.update(created.id, read.outs, checked.inputs)
    assert restored.outs["permissions"] == RESEARCHER == world.client().get_role("researcher").permissions.to_wire()
    # A create that finds its role already there (an interrupted create) adopts it.
    again = role.create(checked.inputs)
    assert again.id == created.id
    role.delete(created.id, created.outs)
    assert [r.name for r in world.client().list_roles()] == ["manager", "member"]
    role.delete(created.id, created.outs)  # already gone
    assert role.read(created.id, created.outs).id == ""


def test_bad_role_inputs_fail_check_with_the_field_named(world: World) -> None:
    role = world.configured(VastTeamRoleProvider())
    result = role.check({}, {"team": TEAM, "name": "r", "permissions": {"api": {"instance_red": {}}}})
    failures = {f.property: f.reason for f in result.failures}
    assert set(failures) == {"name", "permissions"}
    assert "permissions.api.instance_red: unknown category" in failures["permissions"]


def test_a_member_is_invited_joins_and_is_removed(world: World) -> None:
    world = bootstrapped(world)
    member = world.configured(VastTeamMemberProvider())
    props = {"team": TEAM, "team_id": world.team_id, "email": "Ada@Example.com", "role": "member"}
    checked = member.check({}, props)
    assert checked.inputs["email"] == "ada@example.com"
    created = member.create(checked.inputs)
    assert created.outs["status"] == "invited" and created.outs["invited_at"] is not None
    assert member.read(created.id, created.outs).outs == created.outs  # not joined yet: still invited
    ada = make_account(world.emulator, username="ada")
    Control(world.emulator.url).accept_invitation(world.team_id, "ada@example.com")
    read = member.read(created.id, created.outs)
    assert (read.outs["status"], read.outs["user_id"]) == ("member", ada.id)
    # Vast cannot change a member's role: a new role replaces the member, removed first.
    diff = member.diff(created.id, read.outs, {**checked.inputs, "role": "manager"})
    assert diff.replaces == ["role"] and diff.delete_before_replace is True
    member.delete(created.id, read.outs)
    assert [m.id for m in world.client().list_members()] == [world.owner.id]
    assert member.read(created.id, read.outs).id == ""  # removed: the next up invites again
    member.delete(created.id, read.outs)  # already gone


def test_an_invitation_left_unanswered_lapses(world: World) -> None:
    world = bootstrapped(world)
    member = world.configured(VastTeamMemberProvider())
    created = member.create({"team": TEAM, "team_id": world.team_id, "email": "bob@example.com", "role": "member"})
    Control(world.emulator.url).advance(INVITATION_TTL + 60)
    assert member.read(created.id, created.outs).id == ""


def key_inputs(world: World, kind: str = "preview", **changes: Any) -> dict[str, Any]:
    props = ApiKeyInputs(team=TEAM, team_id=world.team_id, kind=kind, name=key_name(TEAM, kind, "2026-11-01"),  # type: ignore[arg-type]
                         permissions=PREVIEW if kind == "preview" else DEPLOY, rotation="2026-11-01",
                         recipient=recipient_env(TEAM, kind)).model_dump(mode="json")  # type: ignore[arg-type]
    return {**props, **changes}


def test_check_needs_the_recipient_secret_and_records_which_one_it_is(world: World) -> None:
    provider = VastApiKeyProvider(environ={})
    failures = provider.check({}, key_inputs(world)).failures
    assert [(f.property, f.reason) for f in failures] == [
        ("recipient", "ml-research's preview key: VASTGUARD_PREVIEW_SECRET_ML_RESEARCH is not set: export the "
                      "recipient's secret (generate one with `openssl rand -base64 32`; the platform job and this "
                      "team's job hold the same value)")]
    provider = VastApiKeyProvider(environ=world.env)
    first = provider.check({}, key_inputs(world)).inputs["sealed_for"]
    sealed = SealedFor.parse(first)
    assert sealed is not None and sealed.matches(world.env[recipient_env(TEAM, "preview")])
    assert provider.check(key_inputs(world, sealed_for=first), key_inputs(world)).inputs["sealed_for"] == first
    changed = VastApiKeyProvider(environ={recipient_env(TEAM, "preview"): secrets.token_urlsafe(32)})
    assert changed.check(key_inputs(world, sealed_for=first), key_inputs(world)).inputs["sealed_for"] != first
    wrong = provider.check({}, key_inputs(world, recipient="VASTGUARD_DEPLOY_SECRET_ML_RESEARCH")).failures
    assert "sealed for VASTGUARD_PREVIEW_SECRET_ML_RESEARCH" in wrong[0].reason


def test_a_key_is_made_in_the_team_sealed_for_its_recipient_and_revoked(world: World) -> None:
    world = bootstrapped(world)
    provider = world.configured(VastApiKeyProvider(environ=world.env))
    inputs = provider.check({}, key_inputs(world)).inputs
    created = provider.create(inputs)
    assert rpc.is_rpc_secret(created.outs["key"])  # a secret on the wire, from the provider on
    key = rpc.unwrap_rpc_secret(created.outs["key"])
    envelope = Envelope.model_validate(created.outs["envelope"])
    assert (envelope.team, envelope.kind, envelope.key_id) == (TEAM, "preview", int(created.id))
    assert open_envelope(envelope, world.env[recipient_env(TEAM, "preview")]) == key
    assert key not in str(created.outs["envelope"])
    with world.client(key) as preview:  # the preview key lists and searches, and cannot rent
        assert preview.current_user().id == world.team_id
        offer = preview.search_offers(OfferQuery(gpu_names="RTX 3090", disk_gb=16, limit=1))[0]
        with pytest.raises(AuthError):
            preview.create_instance(offer.id, image="pytorch/pytorch", disk_gb=16, label="nope")
    read = provider.read(created.id, created.outs)
    assert read.id == created.id and rpc.unwrap_rpc_secret(read.outs["key"]) == key
    assert read.outs["permissions"] == PREVIEW
    # A new recipient secret reseals in place: the same key, a new envelope only the new secret opens.
    world.env[recipient_env(TEAM, "preview")] = secrets.token_urlsafe(32)
    resealed = provider.update(created.id, created.outs, provider.check(inputs, key_inputs(world)).inputs)
    assert open_envelope(Envelope.model_validate(resealed.outs["envelope"]),
                         world.env[recipient_env(TEAM, "preview")]) == key
    # Revoked in the console: a refresh finds it gone, and the delete that follows is fine with that.
    world.client().delete_api_key(int(created.id))
    assert provider.read(created.id, created.outs).id == ""
    provider.delete(created.id, created.outs)


def test_what_a_key_is_replaces_it_create_before_delete(world: World) -> None:
    provider = VastApiKeyProvider(environ=world.env)
    olds = {**key_inputs(world), "key_id": 1, "key": "x", "envelope": {}}
    for name, value in (("rotation", "2026-12-01"), ("permissions", DEPLOY), ("ip_allowlist", ["10.0.0.0/8"]),
                         ("name", "renamed")):
        diff = provider.diff("1", olds, {**key_inputs(world), name: value})
        assert diff.replaces == [name] and diff.delete_before_replace is False
    in_place = provider.diff("1", olds, {**key_inputs(world), "sealed_for": "scrypt$a$b"})
    assert in_place.changes and in_place.replaces == []


def test_an_allow_listed_key_works_only_from_its_addresses(world: World) -> None:
    world = bootstrapped(world)
    provider = world.configured(VastApiKeyProvider(environ=world.env))
    fenced = provider.create(provider.check({}, key_inputs(world, ip_allowlist=["203.0.113.7"])).inputs)
    assert fenced.outs["ip_allowlist"] == ["203.0.113.7/32"]
    with world.client(rpc.unwrap_rpc_secret(fenced.outs["key"])) as vast, pytest.raises(AuthError):
        vast.list_instances()


def test_a_key_whose_envelope_cannot_be_sealed_is_revoked_before_the_create_fails(world: World) -> None:
    world = bootstrapped(world)
    inputs = VastApiKeyProvider(environ=world.env).check({}, key_inputs(world)).inputs
    without = world.configured(VastApiKeyProvider(environ={}))  # the secret vanished between check and create
    with pytest.raises(ProviderError, match="VASTGUARD_PREVIEW_SECRET_ML_RESEARCH is not set"):
        without.create(inputs)
    assert [k.name for k in world.client().list_api_keys()] == ["console"]


def test_a_team_made_in_the_console_is_adopted_by_its_id_and_nothing_is_created(world: World) -> None:
    made = make_team(world.emulator, world.owner, name="made-in-console")
    key = make_team_key(world.emulator, made)
    world.settings = AccessSettings(personal_key=world.owner.api_key, base_url=world.emulator.url,
                                    team_keys={"vision": key})
    teams_before = sorted(a.id for a in world.emulator.market.state.accounts.values() if a.kind == "team")
    adopted = world.configured(VastTeamProvider()).create(
        {"team": "vision", "vast_name": "made-in-console", "adopt_team_id": made.id})
    assert int(adopted.id) == made.id and adopted.outs["bootstrapped"] is True
    assert sorted(a.id for a in world.emulator.market.state.accounts.values() if a.kind == "team") == teams_before
    # An id the team's key does not act in is refused: nothing is adopted on a wrong id.
    with pytest.raises(ProviderError, match=r"acts in Vast account \d+, not in team vision"):
        world.configured(VastTeamProvider()).create(
            {"team": "vision", "vast_name": "made-in-console", "adopt_team_id": made.id + 999})
