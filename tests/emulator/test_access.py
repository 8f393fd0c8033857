"""Access control in the emulator over real HTTP: every endpoint checks the calling key, Vast's refusals, IP
allow-lists, constraints, teams as accounts of their own, roles, members, keys, credit, the audit log, and all
of it surviving a restart."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import EmulatorServer
from emulator.errors import Unauthorized
from emulator.testing import (
    Control,
    EmulatorAccount,
    EmulatorTeam,
    HttpResult,
    http,
    make_account,
    make_team,
    make_team_key,
)
from emulator.urls import ROUTES
from tests.emulator.helpers import offer as add_offer

DENIED = {"success": False, "error": "unauthorized", "msg": Unauthorized.MESSAGE}
PREVIEW: dict[str, Any] = {"api": {"instance_read": {}, "misc": {}, "user_read": {}}}
DEPLOY: dict[str, Any] = {"api": {"instance_read": {}, "instance_write": {}, "misc": {}, "user_read": {}}}


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(port=0, seed=5, provision_delay=0, freeze_clock=True) as srv:
        yield srv


@pytest.fixture
def owner(server: EmulatorServer) -> EmulatorAccount:
    return make_account(server, balance=100, username="platform")


@pytest.fixture
def team(server: EmulatorServer, owner: EmulatorAccount) -> EmulatorTeam:
    return make_team(server, owner, name="ml-research", transfer_credit=40)


@pytest.fixture
def team_key(server: EmulatorServer, team: EmulatorTeam) -> str:
    return make_team_key(server, team)


def call(server: EmulatorServer, key: str, method: str, path: str, body: Any = None, **query: Any) -> HttpResult:
    return http(server.url, method, path, key=key, body=body, query=query or None)


def mint(server: EmulatorServer, key: str, permissions: Any = None, *, name: str = "scoped",
         key_params: Any = None) -> str:
    body: dict[str, Any] = {"name": name}
    if permissions is not None:
        body["permissions"] = permissions
    if key_params is not None:
        body["key_params"] = key_params
    made = call(server, key, "POST", "/api/v0/auth/apikeys/", body)
    assert made.status == 200, made.text
    return str(made.json()["key"])


def rent(server: EmulatorServer, key: str, *, label: str = "job") -> int:
    offer_id = add_offer(server.market, dph_base="0.50")
    made = call(server, key, "PUT", f"/api/v0/asks/{offer_id}/", {"image": "pytorch/pytorch", "disk": 10,
                                                                    "label": label})
    assert made.status == 200, made.text
    return int(made.json()["new_contract"])


def _sample_path(route_pattern: re.Pattern[str]) -> str:
    path: str = route_pattern.pattern.strip("^$").removesuffix("/?")
    for group, value in (("instance_id", "21000000"), ("offer_id", "1"), ("id", "7"), ("name", "preview")):
        path = path.replace(f"(?P<{group}>\\d+)", value).replace(f"(?P<{group}>[^/]+)", value)
    return path


API_ROUTES = [r for r in ROUTES if not r.control and r.auth]


@pytest.mark.parametrize("route", API_ROUTES, ids=[f"{r.method} {r.pattern.pattern}" for r in API_ROUTES])
def test_every_endpoint_refuses_a_key_without_its_category(server: EmulatorServer, owner: EmulatorAccount,
                                                           route: Any) -> None:
    nothing = mint(server, owner.api_key, {"api": {}})
    got = call(server, nothing, route.method, _sample_path(route.pattern), {} if route.method != "GET" else None)
    assert route.endpoint is not None
    if route.endpoint.category is None:  # the audit log: any valid key of the account
        assert got.status == 200
        return
    assert (got.status, got.json()) == (401, DENIED)
    assert got.headers["x-emulator-denied"] == f"key lacks {route.endpoint.category}"
    assert got.headers["content-type"] == "application/json"


def test_a_scoped_key_does_what_its_categories_allow_and_nothing_else(server: EmulatorServer,
                                                                      owner: EmulatorAccount) -> None:
    preview = mint(server, owner.api_key, PREVIEW)
    instance = rent(server, owner.api_key)
    assert call(server, preview, "GET", "/api/v0/users/current").status == 200
    assert call(server, preview, "POST", "/api/v0/bundles/", {"limit": 1}).status == 200
    assert call(server, preview, "GET", f"/api/v0/instances/{instance}/", owner="me").json()["instances"]["id"] \
        == instance
    for method, path, body in (("PUT", f"/api/v0/instances/{instance}/", {"state": "stopped"}),
                               ("DELETE", f"/api/v0/instances/{instance}/", {}),
                               ("GET", "/api/v0/charges/", None),
                               ("PUT", "/api/v0/commands/transfer_credit/", {"recipient": "1", "amount": 1})):
        refused = call(server, preview, method, path, body)
        assert (refused.status, refused.json()) == (401, DENIED), (method, path)
    assert server.market.state.instances[instance].actual_status == "running"  # nothing the refusals asked happened


def test_constraints_eq_lte_gte_and_bulk_calls(server: EmulatorServer, owner: EmulatorAccount) -> None:
    first, second, third = (rent(server, owner.api_key, label=f"j{i}") for i in range(3))
    only_first = mint(server, owner.api_key, {"api": {"instance_read": {}, "instance_write": {
        "api.instance.manage": {"constraints": {"id": {"eq": first}}}}}})
    up_to_second = mint(server, owner.api_key, {"api": {"instance_write": {
        "api.instance.destroy": {"constraints": {"id": {"gte": first, "lte": second}}}}}})
    assert call(server, only_first, "PUT", f"/api/v0/instances/{first}/", {"label": "mine"}).status == 200
    denied = call(server, only_first, "PUT", f"/api/v0/instances/{second}/", {"label": "not mine"})
    assert denied.status == 401 and denied.headers["x-emulator-denied"] == "key constrains api.instance.manage id"
    # The category is narrowed to the one endpoint: destroying is refused even for the allowed id.
    assert call(server, only_first, "DELETE", f"/api/v0/instances/{first}/", {}).status == 401
    # Bulk calls pass only when every id does.
    assert call(server, only_first, "PUT", "/api/v0/instances/", {"ids": [first, second], "state": "stopped"}) \
        .status == 401
    assert call(server, only_first, "PUT", "/api/v0/instances/", {"ids": [first], "state": "stopped"}).status == 200
    assert call(server, up_to_second, "DELETE", f"/api/v0/instances/{third}/", {}).status == 401
    assert call(server, up_to_second, "DELETE", "/api/v0/instances/", {"instance_ids": [second, third]}).status == 401
    assert call(server, up_to_second, "DELETE", "/api/v0/instances/", {"instance_ids": [first, second]}).status == 200
    assert [i.id for i in server.market._live()] == [third]


def test_constraints_on_body_fields_and_a_missing_parameter(server: EmulatorServer, owner: EmulatorAccount) -> None:
    small_disks = mint(server, owner.api_key, {"api": {"instance_write": {
        "api.instance.create": {"constraints": {"disk": {"lte": 16}}}}}})
    offer_id = add_offer(server.market, dph_base="0.50")
    big = call(server, small_disks, "PUT", f"/api/v0/asks/{offer_id}/", {"image": "x/y", "disk": 32, "label": "b"})
    assert big.status == 401
    small = call(server, small_disks, "PUT", f"/api/v0/asks/{offer_id}/", {"image": "x/y", "disk": 16, "label": "s"})
    assert small.status == 200
    labelled = mint(server, owner.api_key, {"api": {"instance_write": {
        "api.instance.manage": {"constraints": {"label": {"eq": "ok"}}}}}})
    instance = small.json()["new_contract"]
    assert call(server, labelled, "PUT", f"/api/v0/instances/{instance}/", {"label": "ok"}).status == 200
    # A stop says nothing about `label`: a constraint on a parameter the request lacks fails closed.
    assert call(server, labelled, "PUT", f"/api/v0/instances/{instance}/", {"state": "stopped"}).status == 401


def test_ip_allow_list(server: EmulatorServer, owner: EmulatorAccount) -> None:
    elsewhere = mint(server, owner.api_key, PREVIEW, key_params={"ip_whitelist": ["203.0.113.0/24"]})
    here = mint(server, owner.api_key, PREVIEW, key_params=json.dumps({"ip_whitelist": ["127.0.0.1"]}))
    refused = call(server, elsewhere, "GET", "/api/v0/users/current")
    assert (refused.status, refused.json()) == (401, DENIED)
    assert refused.headers["x-emulator-denied"] == "ip_whitelist"
    assert call(server, here, "GET", "/api/v0/users/current").status == 200
    listed = {k["name"]: k["key_params"] for k in call(server, owner.api_key, "GET", "/api/v0/auth/apikeys/")
              .json()["apikeys"]}
    assert listed["scoped"] in ({"ip_whitelist": ["203.0.113.0/24"]}, {"ip_whitelist": ["127.0.0.1/32"]})


@pytest.mark.parametrize(("permissions", "says"), [
    ({"api": {"instance_red": {}}}, "permissions.api.instance_red: unknown category"),
    ({"api": {"instance_read": {"api.instance.show": {"constraints": {"id": {"lt": 5}}}}}},
     "permissions.api.instance_read.api.instance.show.constraints.id.lt: unknown operator 'lt'"),
    ({"api": {"instance_read": {"api.instance.show": {"constraints": {"id": {"gte": "x"}}}}}},
     "permissions.api.instance_read.api.instance.show.constraints.id.gte: compares numbers"),
    ({"apis": {}}, "permissions.apis: unknown key"),
])  # fmt: skip
def test_bad_permission_documents_are_refused_at_key_and_role_creation(
        server: EmulatorServer, owner: EmulatorAccount, team_key: str, permissions: Any, says: str) -> None:
    for key, path, body in ((owner.api_key, "/api/v0/auth/apikeys/", {"name": "k", "permissions": permissions}),
                            (team_key, "/api/v0/team/roles/", {"name": "bad", "permissions": permissions})):
        refused = call(server, key, "POST", path, body)
        assert refused.status == 400, refused.text
        assert refused.json()["error"] == "invalid_permissions" and refused.json()["msg"].startswith(says)
    bad_params = call(server, owner.api_key, "POST", "/api/v0/auth/apikeys/",
                      {"name": "k", "key_params": {"ip_whitelist": ["not-an-ip"]}})
    assert bad_params.status == 400 and "key_params.ip_whitelist[0]" in bad_params.json()["msg"]


def test_a_key_never_grants_more_than_its_creator_holds(server: EmulatorServer, owner: EmulatorAccount) -> None:
    deploy = mint(server, owner.api_key, {"api": {**DEPLOY["api"], "user_write": {}}})
    escalate = call(server, deploy, "POST", "/api/v0/auth/apikeys/", {"name": "x", "permissions": {
        "api": {"billing_write": {}}}})
    assert escalate.status == 401 and "api.billing_write" in escalate.json()["msg"]
    inherited = mint(server, deploy, name="inherited")  # no permissions: exactly the creator's
    [row] = [k for k in call(server, deploy, "GET", "/api/v0/auth/apikeys/").json()["apikeys"]
             if k["name"] == "inherited"]
    assert row["permissions"] == {"api": {**DEPLOY["api"], "user_write": {}}}
    assert call(server, inherited, "PUT", "/api/v0/commands/transfer_credit/",
                {"recipient": "1", "amount": 1}).status == 401


def test_keys_are_shown_once_listed_without_the_key_and_deleted(server: EmulatorServer,
                                                                owner: EmulatorAccount) -> None:
    made = call(server, owner.api_key, "POST", "/api/v0/auth/apikeys/", {"name": "ci", "permissions": PREVIEW})
    body = made.json()
    secret, key_id = body["key"], body["id"]
    assert body["success"] is True and len(secret) == 64 and body["permissions"] == PREVIEW
    listed = call(server, owner.api_key, "GET", "/api/v0/auth/apikeys/")
    assert secret not in listed.text and owner.api_key not in listed.text
    rows = {k["name"]: k for k in listed.json()["apikeys"]}
    assert rows["primary"]["primary"] is True and rows["primary"]["permissions"] is False
    assert rows["ci"]["key"] is None and rows["ci"]["key_type"] == "api" and rows["ci"]["team_id"] is None
    assert call(server, owner.api_key, "GET", f"/api/v0/auth/apikeys/{key_id}/").json()["name"] == "ci"
    primary_id = rows["primary"]["id"]
    assert call(server, owner.api_key, "DELETE", f"/api/v0/auth/apikeys/{primary_id}/", {}).json()["msg"] == \
        "You cannot delete your primary key."
    other = make_account(server)
    assert call(server, other.api_key, "DELETE", f"/api/v0/auth/apikeys/{key_id}/", {}).status == 404
    deleted = call(server, owner.api_key, "DELETE", f"/api/v0/auth/apikeys/{key_id}/", {})
    assert (deleted.status, deleted.json()) == (200, "Successfully Deleted API Key")
    gone = call(server, secret, "GET", "/api/v0/users/current")
    assert (gone.status, gone.json()) == (401, {"error": "auth_error", "msg": "Invalid user key"})
    state = Control(server.url).call("GET", "/state")
    assert secret not in json.dumps(state) and "key_sha256" not in json.dumps(state)


def test_a_team_is_an_account_of_its_own(server: EmulatorServer, owner: EmulatorAccount) -> None:
    made = call(server, owner.api_key, "POST", "/api/v0/team/", {"team_name": "vision", "transfer_credit": 25})
    assert made.json() == {"success": True, "msg": "Team Successfully Created!", "team_id": made.json()["team_id"]}
    team_id = made.json()["team_id"]
    control = Control(server.url)
    assert control.account(team_id)["balance"] == 25.0 and control.account(owner.id)["balance"] == 75.0
    assert control.account(team_id)["kind"] == "team" and control.account(team_id)["owner_id"] == owner.id
    # The creating key keeps acting on the personal account.
    assert call(server, owner.api_key, "GET", "/api/v0/users/current").json()["id"] == owner.id
    key = make_team_key(server, EmulatorTeam(team_id, "vision", owner.id))
    me = call(server, key, "GET", "/api/v0/users/current").json()
    assert (me["id"], me["username"], me["balance"]) == (team_id, "vision", 25.0)
    for body, says in (({"team_name": "vision"}, "Team name already exists"),
                       ({"team_name": "platform"}, "Team name already exists"),
                       ({"team_name": "rich", "transfer_credit": 1000}, "not enough credit to transfer"),
                       ({"team_name": "neg", "transfer_credit": -1}, "transfer credit must be a positive number"),
                       ({}, "team_name is required")):
        refused = call(server, owner.api_key, "POST", "/api/v0/team/", body)
        assert refused.status == 400 and refused.json()["msg"].startswith(says), refused.text
    nested = call(server, key, "POST", "/api/v0/team/", {"team_name": "nested"})
    assert nested.status == 400 and "within a team" in nested.json()["msg"]


def test_team_keys_see_only_their_team(server: EmulatorServer, owner: EmulatorAccount, team: EmulatorTeam,
                                       team_key: str) -> None:
    other_team = make_team(server, owner, name="data-science", transfer_credit=20)
    other_key = make_team_key(server, other_team)
    mine, theirs, personal = rent(server, team_key), rent(server, other_key), rent(server, owner.api_key)
    listed = call(server, team_key, "GET", "/api/v1/instances/").json()
    assert [i["id"] for i in listed["instances"]] == [mine] and listed["total_instances"] == 1
    assert [i["id"] for i in call(server, owner.api_key, "GET", "/api/v1/instances/").json()["instances"]] \
        == [personal]
    for victim in (theirs, personal):
        assert call(server, team_key, "GET", f"/api/v0/instances/{victim}/").json() == {"instances": None}
        assert call(server, team_key, "PUT", f"/api/v0/instances/{victim}/", {"state": "stopped"}).status == 404
        assert call(server, team_key, "DELETE", f"/api/v0/instances/{victim}/", {}).status == 404
    assert all(i.actual_status == "running" for i in server.market._live())
    assert [m["username"] for m in call(server, team_key, "GET", "/api/v0/team/members/").json()] == ["platform"]


def test_charges_accrue_to_the_team_and_an_empty_team_stops(server: EmulatorServer, owner: EmulatorAccount,
                                                            team: EmulatorTeam, team_key: str) -> None:
    instance = rent(server, team_key)
    control = Control(server.url)
    control.advance(3600)
    team_balance = control.account(team.id)["balance"]
    assert team_balance < 40 and control.account(owner.id)["balance"] == 60.0  # the personal account pays nothing
    charges = call(server, team_key, "GET", "/api/v0/charges/", select_filters={"day": {"gte": 0, "lte": 4e9}})
    assert {c["source"] for c in charges.json()["results"]} == {f"instance-{instance}"}
    assert call(server, owner.api_key, "GET", "/api/v0/charges/",
                select_filters={"day": {"gte": 0, "lte": 4e9}}).json()["total"] == 0
    control.advance(200 * 3600)  # far past what 40 dollars buy
    row = call(server, team_key, "GET", f"/api/v0/instances/{instance}/").json()["instances"]
    assert (row["actual_status"], row["status_msg"]) == ("stopped", "Stopped: account credit exhausted")
    assert control.account(owner.id)["balance"] == 60.0


def test_default_roles_and_role_rules(server: EmulatorServer, team_key: str) -> None:
    roles = call(server, team_key, "GET", "/api/v0/team/roles-full/").json()
    assert [(r["name"], r["identifier"]) for r in roles] == [("manager", "team_manager"), ("member", "team_member")]
    assert roles[1]["permissions"] == {"api": {"instance_read": {}, "instance_write": {}, "user_read": {},
                                               "misc": {}}}
    assert call(server, team_key, "POST", "/api/v0/team/roles/", {"name": "preview", "permissions": PREVIEW}) \
        .json() == {"msg": "success"}
    shown = call(server, team_key, "GET", "/api/v0/team/roles/preview/").json()
    assert shown["name"] == "preview" and shown["permissions"] == PREVIEW
    updated = call(server, team_key, "PUT", f"/api/v0/team/roles/{shown['id']}/", {"permissions": DEPLOY})
    assert updated.json() == {"success": True, "msg": "Successfully Updated Team Role For preview"}
    assert call(server, team_key, "GET", "/api/v0/team/roles/preview/").json()["permissions"] == DEPLOY
    owner_role = next(r for r in server.market.state.roles.values() if r.identifier == "team_owner")
    for method, path, body, status, says in (
        ("POST", "/api/v0/team/roles/", {"name": "preview", "permissions": PREVIEW}, 403, "already exists"),
        ("POST", "/api/v0/team/roles/", {"name": "x", "permissions": PREVIEW}, 400, "Role name must be 2-50"),
        ("POST", "/api/v0/team/roles/", {"name": "nope"}, 400, "Missing required params"),
        ("PUT", f"/api/v0/team/roles/{owner_role.id}/", {"name": "boss"}, 403, "Cannot update the team owner role"),
        ("PUT", "/api/v0/team/roles/preview/", {"name": "p2"}, 400, "Role id must be an integer"),
        ("PUT", "/api/v0/team/roles/999999/", {"name": "p2"}, 404, "Role with id 999999 not found."),
        ("DELETE", "/api/v0/team/roles/owner/", {}, 403, "Cannot delete the owner role"),
        ("DELETE", "/api/v0/team/roles/ghost/", {}, 404, "Role not found"),
        ("GET", "/api/v0/team/roles/ghost/", None, 404, "Role not found"),
    ):
        got = call(server, team_key, method, path, body)
        assert got.status == status and says in got.json()["msg"], (method, path, got.text)
    removed = call(server, team_key, "DELETE", "/api/v0/team/roles/preview/", {})
    assert removed.json() == {"status": "success", "message": "Role preview removed from team"}


def test_team_calls_from_a_personal_account_are_refused(server: EmulatorServer, owner: EmulatorAccount) -> None:
    for method, path, body, status in (("POST", "/api/v0/team/roles/", {"name": "ab", "permissions": PREVIEW}, 403),
                                       ("GET", "/api/v0/team/members/", None, 403),
                                       ("GET", "/api/v0/team/roles-full/", None, 403),
                                       ("DELETE", "/api/v0/team/members/5/", {}, 403),
                                       ("POST", "/api/v0/team/invite/", {}, 400),
                                       ("DELETE", "/api/v0/team/", {}, 404)):
        got = call(server, owner.api_key, method, path, body)
        assert got.status == status, (method, path, got.text)
    assert "not a team account" in call(server, owner.api_key, "DELETE", "/api/v0/team/", {}).json()["msg"]


def test_members_invitations_and_what_a_member_may_do(server: EmulatorServer, owner: EmulatorAccount,
                                                      team: EmulatorTeam, team_key: str) -> None:
    alice = make_account(server, balance=5, username="alice")
    invited = call(server, team_key, "POST", "/api/v0/team/invite/", email="alice@example.com", role="member")
    assert invited.json() == {"success": True, "msg": "New invitation sent to alice@example.com"}
    for query, status, says in (({"email": "platform@example.com", "role": "member"}, 400, "You cannot invite"),
                                ({"email": "bob@example.com", "role": "owner"}, 400, "The owner role"),
                                ({"email": "bob@example.com", "role": "ghost"}, 404, "Invalid role choice"),
                                ({"email": "bob@example.com"}, 400, "Missing email or role")):
        got = call(server, team_key, "POST", "/api/v0/team/invite/", **query)
        assert got.status == status and got.json()["msg"].startswith(says), got.text
    control = Control(server.url)
    control.accept_invitation(team.id, "alice@example.com")
    members = call(server, team_key, "GET", "/api/v0/team/members/").json()
    assert [(m["username"], m["roles"]) for m in members] == [("platform", ["owner"]), ("alice", ["member"])]
    alice_key = make_team_key(server, team, user_id=alice.id)
    instance = rent(server, alice_key)  # members rent
    assert call(server, alice_key, "GET", "/api/v0/charges/",
                select_filters={"day": {"gte": 0, "lte": 4e9}}).status == 401  # but see no billing
    assert call(server, alice_key, "POST", "/api/v0/team/invite/", email="x@example.com", role="member").status \
        == 401  # nor manage the team
    # Her key may not outgrow her role, even with a document of its own.
    assert call(server, alice_key, "POST", "/api/v0/auth/apikeys/", {"name": "k", "permissions": PREVIEW}).status \
        == 401  # creating keys needs user_write, which members lack
    owner_role = call(server, team_key, "DELETE", f"/api/v0/team/members/{owner.id}/", {})
    assert owner_role.status == 403 and "owner" in owner_role.json()["msg"]
    assert call(server, team_key, "DELETE", "/api/v0/team/members/42/", {}).status == 404
    removed = call(server, team_key, "DELETE", f"/api/v0/team/members/{alice.id}/", {})
    assert removed.json() == {"status": "success", "message": "User removed from the team."}
    assert call(server, alice_key, "GET", "/api/v0/users/current").status == 401  # her team keys are revoked
    assert call(server, alice.api_key, "GET", "/api/v0/users/current").json()["id"] == alice.id  # not her own
    assert server.market.state.instances[instance].account_id == team.id  # the team's instance stays the team's
    expired = call(server, team_key, "POST", "/api/v0/team/invite/", email="late@example.com", role="member")
    assert expired.status == 200
    make_account(server, username="late")
    control.advance(4 * 3600 + 1)
    with pytest.raises(RuntimeError, match="expired"):
        control.accept_invitation(team.id, "late@example.com")


def test_credit_transfers(server: EmulatorServer, owner: EmulatorAccount, team: EmulatorTeam,
                          team_key: str) -> None:
    control = Control(server.url)
    friend = make_account(server, balance=0, username="friend")
    assert call(server, owner.api_key, "PUT", "/api/v0/commands/transfer_credit/",
                {"sender": "me", "recipient": "friend@example.com", "amount": 2.5}).json() == {"success": True}
    assert call(server, owner.api_key, "PUT", "/api/v0/commands/transfer_credit/",
                {"recipient": team.id, "amount": 7.5}).status == 200
    assert (control.account(owner.id)["balance"], control.account(friend.id)["balance"],
            control.account(team.id)["balance"]) == (50.0, 2.5, 47.5)
    for key, body, error, says in (
        (owner.api_key, {"recipient": "friend@example.com", "amount": 0}, "invalid_args", "cannot be zero"),
        (owner.api_key, {"recipient": "friend@example.com", "amount": 1.001}, "invalid_args", "more than 2 decimal"),
        (owner.api_key, {"recipient": "nobody@example.com", "amount": 1}, "invalid_recipient", "User not found"),
        (owner.api_key, {"recipient": "friend", "amount": 1}, "invalid_recipient", "Invalid recipient email"),
        (owner.api_key, {"recipient": owner.id, "amount": 1}, "invalid_recipient", "to yourself"),
        (owner.api_key, {"recipient": friend.id, "amount": 500}, "insufficient_balance", "You lack the credit"),
        (team_key, {"recipient": friend.id, "amount": 1}, "invalid_recipient", "only transfer credit back"),
    ):
        got = call(server, key, "PUT", "/api/v0/commands/transfer_credit/", body)
        assert got.status == 400 and got.json()["error"] == error and says in got.json()["msg"], (body, got.text)
    assert call(server, team_key, "PUT", "/api/v0/commands/transfer_credit/",
                {"recipient": owner.id, "amount": 7.5}).status == 200
    assert control.account(team.id)["balance"] == 40.0


def test_destroying_a_team(server: EmulatorServer, owner: EmulatorAccount, team: EmulatorTeam,
                           team_key: str) -> None:
    control = Control(server.url)
    manager = make_account(server, username="manager")
    call(server, team_key, "POST", "/api/v0/team/invite/", email="manager@example.com", role="manager")
    control.accept_invitation(team.id, "manager@example.com")
    manager_key = make_team_key(server, team, user_id=manager.id)
    refused = call(server, manager_key, "DELETE", "/api/v0/team/", {})
    assert (refused.status, refused.json()["error"]) == (403, "not_allowed")
    instance = rent(server, team_key)
    busy = call(server, team_key, "DELETE", "/api/v0/team/", {})
    assert busy.status == 400 and "still has instances" in busy.json()["msg"]
    call(server, team_key, "DELETE", f"/api/v0/instances/{instance}/", {})
    left = control.account(team.id)["balance"]
    done = call(server, team_key, "DELETE", "/api/v0/team/", {})
    primary = next(k.id for k in server.market.state.api_keys.values() if k.account_id == owner.id and k.primary)
    assert done.json() == {"success": True, "msg": "Team Successfully Deleted!", "pkey_id": primary}
    assert control.account(owner.id)["balance"] == pytest.approx(60.0 + left)
    assert control.account(team.id)["balance"] == 0.0
    for key in (team_key, manager_key):
        assert call(server, key, "GET", "/api/v0/users/current").status == 401
    assert not [r for r in server.market.state.roles.values() if r.team_id == team.id]


def test_the_audit_log_says_what_each_key_did(server: EmulatorServer, owner: EmulatorAccount, team: EmulatorTeam,
                                              team_key: str) -> None:
    deploy = mint(server, team_key, DEPLOY, name="deploy")
    instance = rent(server, deploy, label="audited")
    call(server, deploy, "PUT", f"/api/v0/instances/{instance}/", {"state": "stopped"})  # not one Vast logs
    call(server, deploy, "DELETE", f"/api/v0/instances/{instance}/", {})
    call(server, team_key, "POST", "/api/v0/team/roles/", {"name": "preview", "permissions": PREVIEW})
    call(server, team_key, "PUT", "/api/v0/commands/transfer_credit/", {"recipient": owner.id, "amount": 1})
    call(server, deploy, "GET", "/api/v1/instances/")  # reads are not audited
    log = call(server, deploy, "GET", "/api/v0/audit_logs/").json()
    keys = {k.name: k.id for k in server.market.state.api_keys.values() if k.account_id == team.id}
    assert [(e["api_route"], e["api_key_id"]) for e in log] == [
        ("api.apikey.create", keys["console"]), ("api.instance.create", keys["deploy"]),
        ("api.instance.destroy", keys["deploy"]),
        ("api.team.roles.create", keys["console"]), ("api.user.transfer_credit", keys["console"])]
    assert log[0]["args"] == {"name": "deploy", "permissions": DEPLOY, "key_id": keys["deploy"]}
    assert log[1]["args"]["new_contract"] == instance and log[1]["args"]["label"] == "audited"
    assert log[2]["args"] == {"id": str(instance)}
    assert all(e["ip_address"] == "127.0.0.1" and e["user_id"] == owner.id for e in log)
    personal = call(server, owner.api_key, "GET", "/api/v0/audit_logs/").json()
    assert [e["api_route"] for e in personal] == []  # the team was seeded through the control plane
    assert "key" not in json.dumps([e["args"] for e in log]).replace('"key_id"', "")


def test_teams_keys_and_roles_survive_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with EmulatorServer(port=0, seed=5, provision_delay=0, state_file=state_file) as first:
        owner = make_account(first, balance=30, username="platform")
        team = make_team(first, owner, name="vision", transfer_credit=10)
        key = make_team_key(first, team)
        scoped = mint(first, key, PREVIEW)
        call(first, key, "POST", "/api/v0/team/roles/", {"name": "preview", "permissions": PREVIEW})
    text = state_file.read_text()
    assert key not in text and scoped not in text and owner.api_key not in text
    with EmulatorServer(port=0, state_file=state_file) as second:
        assert call(second, scoped, "GET", "/api/v0/users/current").json()["id"] == team.id
        assert call(second, scoped, "DELETE", "/api/v0/team/", {}).status == 401
        assert [r["name"] for r in call(second, key, "GET", "/api/v0/team/roles-full/").json()] == [
            "manager", "member", "preview"]
        assert [e["api_route"] for e in call(second, key, "GET", "/api/v0/audit_logs/").json()] == [
            "api.apikey.create", "api.team.roles.create"]
        assert call(second, owner.api_key, "GET", "/api/v0/users/current").json()["balance"] == 20.0


def test_a_state_file_from_before_keys_were_records_still_opens(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with EmulatorServer(port=0, seed=5, state_file=state_file) as first:
        owner = make_account(first, balance=30)
    data = json.loads(state_file.read_text())
    primary = next(iter(data["api_keys"].values()))
    data["accounts"][str(owner.id)]["key_sha256"] = primary["key_sha256"]  # the old layout: the digest on the account
    data["api_keys"] = {}
    state_file.write_text(json.dumps(data))
    with EmulatorServer(port=0, state_file=state_file) as second:
        assert call(second, owner.api_key, "GET", "/api/v0/users/current").json()["id"] == owner.id
