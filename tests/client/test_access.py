"""The client's access-control operations over real HTTP against the emulator: every method, the permission
matrix (for each of Vast's categories one call it allows and one it refuses), constraints, cross-team
isolation, calls never repeated when they may have happened, and keys Vast hands out kept secret."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from emulator import EmulatorServer
from emulator.errors import Unauthorized
from emulator.testing import Control, EmulatorAccount, EmulatorTeam, http, make_account, make_team, make_team_key
from fleet.permissions import KeyParams, PermissionSet
from tests.client.conftest import Script, json_reply
from vastclient import (
    ApiError,
    AuthError,
    CreatedApiKey,
    InvalidRequestError,
    NotFoundError,
    OfferQuery,
    VastClient,
)

PREVIEW = PermissionSet.of("instance_read", "misc", "user_read")
DEPLOY = PermissionSet.of("instance_read", "instance_write", "misc", "user_read")


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(port=0, seed=9, provision_delay=0) as srv:
        yield srv


@pytest.fixture
def owner(server: EmulatorServer) -> EmulatorAccount:
    return make_account(server, balance=100, username="platform")


@pytest.fixture
def connect(server: EmulatorServer) -> Iterator[Callable[[str], VastClient]]:
    clients: list[VastClient] = []

    def make(key: str) -> VastClient:
        clients.append(VastClient(api_key=key, base_url=server.url, max_attempts=2, initial_backoff=0.01))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def cheapest_offer(server: EmulatorServer, owner: EmulatorAccount) -> int:
    with VastClient(api_key=owner.api_key, base_url=server.url) as vast:
        return vast.search_offers(OfferQuery(gpu_names="RTX_4090", max_dph=5))[0].id


def test_every_method_over_http(server: EmulatorServer, owner: EmulatorAccount,
                                connect: Callable[[str], VastClient], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="vastclient")
    platform = connect(owner.api_key)
    team_id = platform.create_team("ml-research", transfer_credit=Decimal("30"))
    assert platform.current_user().balance == Decimal(70)
    as_team = connect(make_team_key(server, EmulatorTeam(team_id, "ml-research", owner.id)))
    assert as_team.current_user().id == team_id and as_team.current_user().balance == Decimal(30)

    role = as_team.create_role("preview", PREVIEW)
    assert (role.name, role.permissions, role.identifier) == ("preview", PREVIEW, None)
    assert as_team.get_role("preview") == role
    assert [r.name for r in as_team.list_roles()] == ["manager", "member", "preview"]
    as_team.update_role(role.id, name="deploy", permissions=DEPLOY.to_wire())
    assert as_team.get_role("deploy").permissions == DEPLOY
    as_team.remove_role("deploy")
    with pytest.raises(NotFoundError, match="Role not found"):
        as_team.get_role("deploy")

    alice = make_account(server, username="alice")
    as_team.invite_member("alice@example.com", "member")
    Control(server.url).accept_invitation(team_id, "alice@example.com")
    assert [(m.username, m.roles) for m in as_team.list_members()] == [("platform", ["owner"]), ("alice", ["member"])]
    as_team.remove_member(alice.id)
    assert [m.username for m in as_team.list_members()] == ["platform"]

    made = as_team.create_api_key("ml-research-preview", permissions=PREVIEW,
                                  key_params=KeyParams.parse({"ip_whitelist": ["127.0.0.0/8"]}))
    secret = made.key.get_secret_value()
    assert isinstance(made, CreatedApiKey) and made.permissions == PREVIEW
    assert secret not in repr(made) and secret not in str(made)
    listed = {k.name: k for k in as_team.list_api_keys()}
    assert listed["ml-research-preview"].team_id == team_id and listed["ml-research-preview"].key_type == "team"
    assert listed["ml-research-preview"].key_params.ip_whitelist == ("127.0.0.0/8",)
    assert as_team.get_api_key(made.id).permissions == PREVIEW
    assert connect(secret).current_user().id == team_id  # the new key acts on the team only
    as_team.delete_api_key(made.id)
    with pytest.raises(AuthError, match="Invalid user key"):
        connect(secret).current_user()

    as_team.transfer_credit(owner.id, Decimal("2.50"))
    assert platform.current_user().balance == Decimal("72.5")
    routes = [e.api_route for e in as_team.audit_logs()]
    assert routes == ["api.team.roles.create", "api.team.roles.update", "api.team.roles.remove",
                      "api.team.invite", "api.team.members.remove", "api.apikey.create", "api.apikey.delete",
                      "api.user.transfer_credit"]
    assert [e.api_route for e in platform.audit_logs()] == ["api.team.create"]
    primary = as_team.destroy_team()
    assert primary > 0 and platform.current_user().balance == Decimal(100)
    assert secret not in caplog.text and owner.api_key not in caplog.text


# For each category: a call it allows, and a call of another category it refuses (the key holds nothing else).
def _instances(vast: VastClient, ctx: dict[str, Any]) -> Any:
    return vast.list_instances()


def _rent(vast: VastClient, ctx: dict[str, Any]) -> Any:
    return vast.create_instance(ctx["offer"], image="pytorch/pytorch", disk_gb=10, label="matrix")


def _user(vast: VastClient, ctx: dict[str, Any]) -> Any:
    return vast.current_user()


def _mint(vast: VastClient, ctx: dict[str, Any]) -> Any:
    return vast.create_api_key("minted", permissions=PermissionSet.of("user_write"))


def _keys(vast: VastClient, ctx: dict[str, Any]) -> Any:
    return vast.list_api_keys()


def _charges(vast: VastClient, ctx: dict[str, Any]) -> Any:
    from datetime import date

    return vast.charges(date(2026, 1, 1), date(2026, 1, 2))


def _transfer(vast: VastClient, ctx: dict[str, Any]) -> Any:
    return vast.transfer_credit(ctx["friend"], 1)


def _search(vast: VastClient, ctx: dict[str, Any]) -> Any:
    return vast.search_offers(OfferQuery(gpu_names="RTX_4090"))


def _members(vast: VastClient, ctx: dict[str, Any]) -> Any:
    return vast.list_members()


def _invite(vast: VastClient, ctx: dict[str, Any]) -> Any:
    return vast.invite_member("someone@example.com", "member")


def _machines(vast: VastClient, ctx: dict[str, Any]) -> Any:
    # The client has no host operations (vastguard rents); the machine categories are checked on the wire.
    got = http(ctx["url"], "GET", "/api/v0/machines/", key=ctx["key"])
    if got.status == 401:
        raise AuthError(got.json()["msg"])
    return got.json()


def _unlist(vast: VastClient, ctx: dict[str, Any]) -> Any:
    got = http(ctx["url"], "DELETE", "/api/v0/machines/4242/asks/", key=ctx["key"], body={})
    if got.status == 401:
        raise AuthError(got.json()["msg"])
    return got.status  # 404: allowed through, and nobody hosts machine 4242


MATRIX = [
    ("instance_read", _instances, _user),
    ("instance_write", _rent, _search),
    ("user_read", _user, _instances),
    ("user_write", _mint, _keys),
    ("billing_read", _charges, _transfer),
    ("billing_write", _transfer, _charges),
    ("misc", _search, _rent),
    ("team_read", _members, _invite),
    ("team_write", _invite, _members),
    ("machine_read", _machines, _unlist),
    ("machine_write", _unlist, _machines),
]


@pytest.mark.parametrize(("category", "allowed", "refused"), MATRIX, ids=[m[0] for m in MATRIX])
def test_permission_matrix(server: EmulatorServer, owner: EmulatorAccount, connect: Callable[[str], VastClient],
                           category: Any, allowed: Any, refused: Any) -> None:
    team = make_team(server, owner, name="matrix", transfer_credit=20)
    maker = connect(make_team_key(server, team))  # team categories need a key in a team's context
    key = maker.create_api_key(f"only-{category}", permissions=PermissionSet.of(category)).key.get_secret_value()
    ctx = {"offer": cheapest_offer(server, owner), "friend": owner.id, "url": server.url, "key": key}
    scoped = connect(key)
    allowed(scoped, ctx)
    with pytest.raises(AuthError, match=re.escape(Unauthorized.MESSAGE)):
        refused(scoped, ctx)


def test_constraints_eq_lte_gte(server: EmulatorServer, owner: EmulatorAccount,
                                connect: Callable[[str], VastClient]) -> None:
    platform = connect(owner.api_key)
    ids = []
    for n in range(3):
        offer = platform.search_offers(OfferQuery(gpu_names="RTX_4090", max_dph=5))[0].id
        ids.append(platform.create_instance(offer, image="pytorch/pytorch", disk_gb=10, label=f"c{n}"))
    first, second, third = ids
    only_first = connect(platform.create_api_key("eq", permissions={"api": {"instance_write": {
        "api.instance.manage": {"constraints": {"id": {"eq": first}}}}}}).key.get_secret_value())
    only_first.stop(first)
    with pytest.raises(AuthError):
        only_first.stop(second)
    from_second = connect(platform.create_api_key("gte", permissions={"api": {"instance_write": {
        "api.instance.destroy": {"constraints": {"id": {"gte": second}}}}}}).key.get_secret_value())
    up_to_second = connect(platform.create_api_key("lte", permissions={"api": {"instance_write": {
        "api.instance.destroy": {"constraints": {"id": {"lte": second}}}}}}).key.get_secret_value())
    with pytest.raises(AuthError):
        from_second.destroy(first)
    with pytest.raises(AuthError):
        up_to_second.destroy(third)
    from_second.destroy(third)
    up_to_second.destroy(first)
    assert [i.id for i in platform.list_instances()] == [second]
    assert {i.id: i.actual_status for i in platform.list_instances()} == {second: "running"}


def test_cross_team_isolation(server: EmulatorServer, owner: EmulatorAccount,
                              connect: Callable[[str], VastClient]) -> None:
    research = connect(make_team_key(server, make_team(server, owner, name="research", transfer_credit=20)))
    vision = connect(make_team_key(server, make_team(server, owner, name="vision", transfer_credit=20)))
    research_deploy = connect(research.create_api_key("deploy", permissions=DEPLOY).key.get_secret_value())
    offer = cheapest_offer(server, owner)
    theirs = vision.create_instance(offer, image="pytorch/pytorch", disk_gb=10, label="vision-job")
    assert research_deploy.get_instance(theirs) is None
    assert research_deploy.list_instances(ids=[theirs]) == []
    with pytest.raises(NotFoundError):
        research_deploy.stop(theirs)
    research_deploy.destroy(theirs)  # the client takes "no such instance" for "already gone" ...
    survivor = vision.get_instance(theirs)  # ... but it was never research's to destroy
    assert survivor is not None and survivor.actual_status == "running"
    assert [m.username for m in research.list_members()] == ["platform"]
    spent = vision.current_user().balance
    assert research.current_user().balance == Decimal(20) and spent is not None and spent < Decimal(20)


def test_a_transfer_that_may_have_happened_is_not_repeated(server: EmulatorServer, owner: EmulatorAccount,
                                                           connect: Callable[[str], VastClient]) -> None:
    friend = make_account(server, balance=0, username="friend")
    control = Control(server.url)
    control.fault(operation="credit", status=502, phase="after", count=1)
    with pytest.raises(ApiError) as caught:
        connect(owner.api_key).transfer_credit(friend.id, 5)
    assert any("read both balances" in note for note in caught.value.__notes__)
    assert len(server.market.requests.records("credit")) == 1
    assert control.account(friend.id)["balance"] == 5.0  # it did happen, once
    control.fault(operation="apikeys", status=503, phase="after", count=1)
    with pytest.raises(ApiError) as caught:
        connect(owner.api_key).create_api_key("ci", permissions=PREVIEW)
    assert any("list_api_keys() and delete it" in note for note in caught.value.__notes__)
    assert len(server.market.requests.records("apikeys")) == 1


def test_bad_bodies_are_refused_before_sending(server: EmulatorServer, owner: EmulatorAccount,
                                               connect: Callable[[str], VastClient]) -> None:
    vast = connect(owner.api_key)
    server.market.requests.clear()
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: vast.create_role("preview", {"api": {"instance_red": {}}}), "permissions.api.instance_red"),
        (lambda: vast.create_role("p", PREVIEW), "name"),
        (lambda: vast.create_api_key("k", key_params={"ip_whitelist": ["nope"]}), "key_params.ip_whitelist[0]"),
        (lambda: vast.transfer_credit(1, "1.001"), "whole cents"),
        (lambda: vast.transfer_credit(1, 0), "amount"),
        (lambda: vast.create_team(""), "team_name"),
        (lambda: vast.invite_member("", "member"), "e-mail"),
    ]
    for attempt, says in cases:
        with pytest.raises(InvalidRequestError, match=re.escape(says)):
            attempt()
    assert server.market.requests.records() == []


def test_keys_vast_hands_out_are_redacted_from_later_errors(make_client: Callable[..., VastClient],
                                                            script: Script) -> None:
    issued = "vk-issued-9f8e7d6c5b4a39281706"
    script.on("POST /api/v0/auth/apikeys/", json_reply(200, {"success": True, "id": 5, "key": issued,
                                                            "permissions": False}))
    script.on("GET /api/v0/auth/apikeys/5/", json_reply(400, {"success": False, "error": "invalid_args",
                                                             "msg": f"bad key {issued} in request"}))
    vast = make_client()
    made = vast.create_api_key("ci")
    assert made.key.get_secret_value() == issued and made.permissions is None
    with pytest.raises(ApiError) as caught:
        vast.get_api_key(5)
    assert issued not in str(caught.value) and "bad key *** in request" in str(caught.value)
