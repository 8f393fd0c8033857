"""The official `vastai` CLI (1.9.1) drives the emulator's access control: teams, roles, members, API keys,
credit, the audit log, and instance commands with scoped keys (what they may do succeeds; what they may not
fails the way Vast's refusals do: `Failed with error 401: Authorization Error ...` on stderr)."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import EmulatorServer
from emulator.errors import Unauthorized
from emulator.testing import Control, EmulatorAccount, EmulatorTeam, make_account, make_team_key
from tests.emulator.official_cli import Cli

REFUSED = f"Failed with error 401: {Unauthorized.MESSAGE}"
PREVIEW: dict[str, Any] = {"api": {"instance_read": {}, "misc": {}, "user_read": {}}}
DEPLOY: dict[str, Any] = {"api": {"instance_read": {}, "instance_write": {}, "misc": {}, "user_read": {}}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorServer, EmulatorAccount, Cli, Path]]:
    files = tmp_path_factory.mktemp("permissions")
    for name, doc in (("preview", PREVIEW), ("deploy", DEPLOY), ("bad", {"api": {"instance_red": {}}})):
        (files / f"{name}.json").write_text(json.dumps(doc))
    with EmulatorServer(port=0, seed=78, provision_delay=0) as server:
        owner = make_account(server, balance=100, username="platform")
        yield server, owner, Cli.at(server.url, owner.api_key, tmp_path_factory.mktemp("vastai-home")), files


@pytest.fixture(scope="module")
def team(world: tuple[EmulatorServer, EmulatorAccount, Cli, Path]) -> tuple[EmulatorTeam, Cli]:
    """`vastai create team` with the platform's personal key, then the console's step (a key in the team)."""
    server, owner, cli, _ = world
    out = cli.run("create", "team", "--team-name", "ml-research", "--transfer-credit", "30").stdout
    created = ast.literal_eval(out.strip())
    assert created["success"] is True and created["msg"] == "Team Successfully Created!"
    team = EmulatorTeam(id=created["team_id"], name="ml-research", owner_id=owner.id)
    assert cli.raw("show", "user")["balance"] == 70.0  # the personal key still acts on the personal account
    return team, cli.with_key(make_team_key(server, team))


def _printed(stdout: str) -> Any:
    """What the CLI printed with `print(dict)`: a Python literal."""
    return ast.literal_eval(stdout.strip())


def test_team_roles_members_credit_and_audit_log(world: tuple[EmulatorServer, EmulatorAccount, Cli, Path],
                                                 team: tuple[EmulatorTeam, Cli]) -> None:
    server, owner, _, files = world
    the_team, as_team = team
    assert as_team.raw("show", "user")["id"] == the_team.id
    assert "success" in as_team.run("create", "team-role", "--name", "preview", "--permissions",
                                    str(files / "preview.json")).stdout
    roles, one = as_team.parallel(("show", "team-roles"), ("show", "team-role", "preview"))
    listed = {r["name"]: r for r in _printed(roles)}
    assert set(listed) == {"manager", "member", "preview"} and listed["preview"]["permissions"] == PREVIEW
    assert json.loads(one)["permissions"] == PREVIEW
    updated = as_team.run("update", "team-role", str(listed["preview"]["id"]), "--name", "previewer",
                          "--permissions", str(files / "deploy.json")).stdout
    assert json.loads(updated)["msg"] == "Successfully Updated Team Role For previewer"
    assert json.loads(as_team.run("show", "team-role", "previewer").stdout)["permissions"] == DEPLOY
    assert _printed(as_team.run("remove", "team-role", "previewer").stdout)["status"] == "success"
    assert "Failed with error 404: Role not found" in as_team.run("show", "team-role", "previewer").stderr
    bad = as_team.run("create", "team-role", "--name", "bad", "--permissions", str(files / "bad.json"))
    assert "Failed with error 400: permissions.api.instance_red: unknown category" in bad.stderr

    alice = make_account(server, balance=1, username="alice")
    invited = as_team.run("invite", "member", "--email", "alice@example.com", "--role", "member")
    assert "successfully invited alice@example.com to your current team" in invited.stdout
    Control(server.url).accept_invitation(the_team.id, "alice@example.com")
    members = {m["username"]: m["roles"] for m in _printed(as_team.run("show", "members").stdout)}
    assert members == {"platform": ["owner"], "alice": ["member"]}
    removed = as_team.run("remove", "member", str(alice.id)).stdout
    assert _printed(removed) == {"status": "success", "message": "User removed from the team."}

    assert f"Sent 5.0 to {owner.id}" in as_team.run("transfer", "credit", str(owner.id), "5", "--skip").stdout
    # The CLI catches the error itself and prints requests' text (Vast's message is not shown).
    refused = as_team.run("transfer", "credit", "alice@example.com", "1", "--skip")
    assert "Failed with error: 400 Client Error: Bad Request for url: " in refused.stdout
    assert as_team.raw("show", "user")["balance"] == 25.0
    log, table = as_team.raw("show", "audit-logs"), as_team.run("show", "audit-logs").stdout
    assert [e["api_route"] for e in log] == [
        "api.team.roles.create", "api.team.roles.update", "api.team.roles.remove", "api.team.invite",
        "api.team.members.remove", "api.user.transfer_credit"]
    assert "api.user.transfer_credit" in table and "api_key_id" in table


def test_api_keys_and_instance_commands_with_scoped_keys(world: tuple[EmulatorServer, EmulatorAccount, Cli, Path],
                                                         team: tuple[EmulatorTeam, Cli]) -> None:
    server, _, _, files = world
    _, as_team = team
    keys = {}
    for name in ("preview", "deploy"):
        out = as_team.run("create", "api-key", "--name", f"ml-research-{name}", "--permission_file",
                          str(files / f"{name}.json")).stdout
        assert out.startswith("api-key created ")
        made = _printed(out.removeprefix("api-key created "))
        assert made["success"] is True and made["permissions"] == (PREVIEW if name == "preview" else DEPLOY)
        keys[name] = (made["id"], made["key"])
    listed = as_team.run("show", "api-keys").stdout
    assert keys["preview"][1] not in listed and keys["deploy"][1] not in listed
    rows = {k["name"]: k for k in _printed(listed)["apikeys"]}
    assert rows["ml-research-preview"]["key"] is None and rows["ml-research-preview"]["key_type"] == "team"
    assert _printed(as_team.run("show", "api-key", str(keys["deploy"][0])).stdout)["name"] == "ml-research-deploy"
    bad = as_team.run("create", "api-key", "--name", "bad", "--permission_file", str(files / "bad.json"))
    assert "Failed with error 400: permissions.api.instance_red: unknown category" in bad.stderr

    preview, deploy = as_team.with_key(keys["preview"][1]), as_team.with_key(keys["deploy"][1])
    [offer] = preview.raw("search", "offers", "gpu_name=RTX_3090", "-o", "dph_total", "--limit", "1")
    refused = preview.run("create", "instance", str(offer["id"]), "--image", "pytorch/pytorch", "--disk", "16")
    assert REFUSED in refused.stderr
    created = deploy.raw("create", "instance", str(offer["id"]), "--image", "pytorch/pytorch", "--disk", "16",
                         "--label", "deployed")
    instance_id = created["new_contract"]
    shown, listed_instances = preview.parallel(("show", "instance", str(instance_id), "--raw"),
                                               ("show", "instances", "--raw"))
    assert json.loads(shown)["label"] == "deployed" and [i["id"] for i in json.loads(listed_instances)] \
        == [instance_id]
    for argv in (("stop", "instance", str(instance_id)), ("destroy", "instance", str(instance_id), "-y")):
        assert REFUSED in preview.run(*argv).stderr + preview.run(*argv).stdout, argv
    assert server.market.state.instances[instance_id].destroyed_at is None
    assert f"destroying instance {instance_id}." in deploy.run("destroy", "instance", str(instance_id), "-y").stdout

    fenced = as_team.run("create", "api-key", "--name", "fenced", "--permission_file", str(files / "preview.json"),
                         "--key_params", '{"ip_whitelist": ["203.0.113.7"]}').stdout
    assert REFUSED in as_team.with_key(_printed(fenced.removeprefix("api-key created "))["key"]) \
        .run("show", "instances").stderr

    assert "Successfully Deleted API Key" in as_team.run("delete", "api-key", str(keys["preview"][0])).stdout
    assert "Failed with error 401: Invalid user key" in preview.run("show", "instances").stderr


def test_destroy_team(world: tuple[EmulatorServer, EmulatorAccount, Cli, Path],
                      team: tuple[EmulatorTeam, Cli]) -> None:
    _, owner, cli, _ = world
    the_team, as_team = team
    left = as_team.raw("show", "user")["balance"]
    before = cli.raw("show", "user")["balance"]
    done = _printed(as_team.run("destroy", "team").stdout)
    assert done["success"] is True and done["msg"] == "Team Successfully Deleted!" and done["pkey_id"] > 0
    assert cli.raw("show", "user")["balance"] == pytest.approx(before + left)  # the balance came home
    assert "Failed with error 401: Invalid user key" in as_team.run("show", "user").stderr
    assert the_team.owner_id == owner.id


def test_host_commands_need_the_machine_categories(world: tuple[EmulatorServer, EmulatorAccount, Cli, Path]) -> None:
    server, owner, cli, files = world
    (files / "host.json").write_text(json.dumps({"api": {"machine_read": {}, "machine_write": {}}}))
    out = cli.run("create", "api-key", "--name", "host", "--permission_file", str(files / "host.json")).stdout
    host = cli.with_key(_printed(out.removeprefix("api-key created "))["key"])
    out = cli.run("create", "api-key", "--name", "renter", "--permission_file", str(files / "deploy.json")).stdout
    renter = cli.with_key(_printed(out.removeprefix("api-key created "))["key"])
    assert host.raw("show", "machines") == {"machines": []}  # nobody hosts machines in the emulator
    assert REFUSED in renter.run("show", "machines").stderr
    unlisted = host.run("unlist", "machine", "4242")
    assert "4242" in unlisted.stdout + unlisted.stderr and "401" not in unlisted.stdout + unlisted.stderr
    assert REFUSED in renter.run("unlist", "machine", "4242").stdout + renter.run("unlist", "machine", "4242").stderr
    assert server.market.state.accounts[owner.id].kind == "user"
