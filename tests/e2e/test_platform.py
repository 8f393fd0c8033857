"""Team access as code through the real engine against the emulator (issue 13's "Done when").

One platform, built once for the module (tests/e2e/platform_env.py): the platform stack creates the seed's
three teams with roles, members and keys; each team stack holds no key and deploys with the deploy key its
envelope delivers. The tests then check, in order, on that platform: the preview key previews and cannot rent;
keys are confined to their team; a platform change beyond the rules fails preview naming the rule and `up`
changes nothing; a rotation; out-of-band changes through the official CLI; a bad declaration; and `team add` /
`team remove`; and least privilege in CI: a pull request loosening its rules is judged by the base's, and what a
preview job holds cannot rent. Each test leaves the platform consistent with its declaration."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator import EmulatorServer
from emulator.testing import Control, make_account
from engine import Engine
from fleet.platform_declaration import PLATFORM_CONFIG
from policies.names import PlatformRuleName
from policies.report import pattern
from tests.e2e.platform_env import TEAMS, PlatformEnv, build_platform
from tests.emulator.official_cli import Cli
from vastclient import API_KEY_ENV, AuthError, NoSuchInstanceError, OfferQuery
from vastguard.cli import main
from vastguard.workspace import team_policy_config

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def platform(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformEnv]:
    root = tmp_path_factory.mktemp("platform-e2e")
    with EmulatorServer(port=0, seed=7, provision_delay=0) as emulator:
        yield build_platform(engine, root, emulator)


def access_state(env: PlatformEnv) -> dict[str, Any]:
    """What Vast holds of the teams' access: roles and their permissions, keys, members, invitations."""
    state = env.emulator.market.state
    return {
        "roles": sorted((r.team_id, r.name, json.dumps(r.permissions.to_wire(), sort_keys=True))
                        for r in state.roles.values()),
        "keys": sorted((k.id, k.account_id, k.name) for k in state.api_keys.values() if k.deleted_at is None),
        "members": sorted((m.team_id, m.user_id, m.role_id) for m in state.members.values()),
        "invitations": sorted((i.team_id, i.email, i.role_id) for i in state.invitations.values()),
        "teams": sorted(a.id for a in state.accounts.values() if a.kind == "team" and a.deleted_at is None),
    }


def test_the_platform_creates_the_teams_and_each_team_deploys_with_its_own_deploy_key(platform: PlatformEnv) -> None:
    state = platform.emulator.market.state
    for team in TEAMS:
        account = platform.account(team)
        assert (account.kind, account.username, account.owner_id) == ("team", team, platform.owner.id)
    roles = {(r.team_id, r.name) for r in state.roles.values() if r.identifier is None}
    assert roles == {(platform.team_ids["ml-research"], "researcher"),
                     (platform.team_ids["ml-engineering"], "operator")}
    invited = {(i.team_id, i.email) for i in state.invitations.values()}
    assert (platform.team_ids["ml-research"], "ada@example.com") in invited and len(invited) == 5
    outputs = platform.outputs()
    assert outputs["pending_bootstrap"] == [] and sorted(outputs["key_envelopes"]) == list(TEAMS)
    for team in TEAMS:
        keys = {k.name or "" for k in state.api_keys.values() if k.account_id == platform.team_ids[team]
                and k.deleted_at is None}
        assert sorted(keys) == ["console", f"vastguard/{team}/deploy/2026-11-01",
                                f"vastguard/{team}/preview/2026-11-01"]
        # The team's stack holds no key: not in its config, not in its state.
        stack_file = platform.ws.stack_file(team).read_text()
        assert "vastai:apiKey" not in stack_file and "vastguard:keyFrom: platform" in stack_file
        preview = platform.ws.preview(team)
        assert preview.returncode == 0, platform.text(preview)[-3000:]
        platform.ws.up(team, message=f"{team} fleet")
        exported = platform.ws.cli.run("stack", "export", stack=team).stdout
        assert "apiKey" not in exported and "secure" not in exported
    # Every rent was made by the team's own deploy key, on the team's own account.
    creates = [e for e in state.audit if e.api_route == "api.instance.create"]
    assert {(e.account_id, e.api_key_id) for e in creates} == {
        (platform.team_ids[team], platform.key_id(team, "deploy")) for team in TEAMS}
    assert len(platform.live("ml-research")) == 3 and len(platform.live("data-science")) == 1


def test_the_preview_key_previews_and_the_emulator_refuses_its_rent(platform: PlatformEnv) -> None:
    with platform.client(platform.key("data-science", "preview")) as preview:
        assert len(preview.list_instances()) == 1
        assert preview.charges(date(2026, 1, 1), date(2099, 12, 31)) is not None  # billing read: budgets
        offer = preview.search_offers(OfferQuery(gpu_names="RTX 3090", disk_gb=16, limit=1))[0]
        with pytest.raises(AuthError):
            preview.create_instance(offer.id, image="pytorch/pytorch", disk_gb=16, label="preview rents?")
        with pytest.raises(AuthError):
            preview.stop(platform.live("data-science")[0].id)
    assert len(platform.live("data-science")) == 1


def test_a_team_key_cannot_see_or_touch_another_teams_instances(platform: PlatformEnv) -> None:
    theirs = platform.live("ml-research")[0].id
    for kind in ("preview", "deploy"):
        with platform.client(platform.key("data-science", kind)) as other:
            assert other.get_instance(theirs) is None
            assert theirs not in {i.id for i in other.list_instances()}
            if kind == "deploy":
                other.destroy(theirs)  # Vast answers no_such_instance (the client's "already gone")...
                with pytest.raises(NoSuchInstanceError):
                    other.stop(theirs)
    instance = platform.emulator.market.state.instances[theirs]  # ...and nothing happened to it
    assert instance.destroyed_at is None and instance.actual_status == "running"


def test_vastguard_pulumi_and_ci_open_the_commands_key_for_the_child_only(platform: PlatformEnv,
                                                                          tmp_path: Path) -> None:
    vastguard = Path(sys.executable).parent / "vastguard"
    env = {k: v for k, v in platform.ws.cli.env.items() if k != API_KEY_ENV}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(vastguard), *argv], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=600, check=False)

    preview = run("pulumi", "-C", str(platform.ws.root), "preview", "--stack", "data-science", "--non-interactive")
    assert preview.returncode == 0, preview.stdout[-2000:] + preview.stderr[-2000:]
    assert "vastguard: data-science's preview key #" in preview.stderr
    listed = run("pulumi", "-C", str(platform.ws.root), "stack", "ls", "--non-interactive")
    assert listed.returncode == 0 and "vastguard:" not in listed.stderr  # no key for a command that needs none
    ci_preview = run("ci", "preview", "--stack", "ml-engineering", "--project-dir", str(platform.ws.root), "--json")
    assert ci_preview.returncode == 0, ci_preview.stderr[-3000:]
    assert json.loads(ci_preview.stdout)["verdict"] in {"passed", "advisory"}
    ci_up = run("ci", "up", "--stack", "ml-engineering", "--project-dir", str(platform.ws.root))
    assert ci_up.returncode == 0, ci_up.stderr[-3000:]
    assert "vastguard: ml-engineering's deploy key #" in ci_up.stderr
    # Without its recipient secret, a team job is told which variable to set, and nothing runs.
    missing = {k: v for k, v in env.items() if k != "VASTGUARD_PREVIEW_SECRET_DATA_SCIENCE"}
    denied = subprocess.run([str(vastguard), "ci", "preview", "--stack", "data-science", "--project-dir",
                             str(platform.ws.root)], env=missing, cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, check=False)
    assert denied.returncode == 1
    assert "VASTGUARD_PREVIEW_SECRET_DATA_SCIENCE is not set" in denied.stderr


# --- least privilege in CI (issue 15): what a pull request's preview job holds cannot rent or loosen its rules --


def _pr_job_env(platform: PlatformEnv, team: str) -> dict[str, str]:
    """What a preview job holds (.github/workflows/preview.yml): the team's preview secret under its team-less
    name, the backend and passphrase; no deploy secret, no other team's secret, no key."""
    env = {k: v for k, v in platform.ws.cli.env.items() if not k.startswith("VASTGUARD_") and k != API_KEY_ENV}
    env["VASTGUARD_PREVIEW_SECRET"] = platform.ws.cli.env[f"VASTGUARD_PREVIEW_SECRET_{team.upper().replace('-', '_')}"]
    return env


def _vastguard(env: dict[str, str], cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "vastguard"), *argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600, check=False)


def _loosening_pr(platform: PlatformEnv, root: Path) -> Path:
    """A pull request's checkout that raises data-science's $/h cap in its team file, makes the pack's $/h rule
    return early, and asks for a notebook at $0.60/h, twice the base's cap of $0.30."""
    pr = root / "pr"
    (pr / "stacks").mkdir(parents=True)
    (pr / "policies" / "teams").mkdir(parents=True)
    stack = yaml.safe_load(platform.ws.stack_file("data-science").read_text())
    stack["config"]["vastguard:fleet"]["notebook"]["max_dph"] = 0.60
    (pr / "stacks" / "Pulumi.data-science.yaml").write_text(yaml.safe_dump(stack, sort_keys=False))
    team_file = json.loads(team_policy_config("data-science").read_text())
    team_file["vast-instance-max-dph"]["max_dph"] = 5
    (pr / "policies" / "teams" / "data-science.json").write_text(json.dumps(team_file, indent=2))
    (pr / "policies" / "instances.py").write_text("def check_max_dph(*_args, **_kwargs):\n    return  # loosened\n")
    return pr


def test_a_pr_loosening_its_rules_is_still_judged_and_denied_by_the_bases_rules(platform: PlatformEnv,
                                                                              tmp_path: Path) -> None:
    pr = _loosening_pr(platform, tmp_path)
    env = _pr_job_env(platform, "data-science")
    sha = "5" * 40
    summary, scratch = tmp_path / "summary.md", tmp_path / "tmp"
    scratch.mkdir()
    home_logs = Path(env["PULUMI_HOME"]) / "logs"

    def logs() -> dict[str, int]:
        # (`pulumi version`, which the engine check runs, logs nothing of a stack: not counted)
        return {p.name: p.stat().st_size for p in home_logs.rglob("*")
                if not p.name.endswith("-version.log")} if home_logs.exists() else {}

    logs_before = logs()
    judged = _vastguard({**env, "GITHUB_STEP_SUMMARY": str(summary), "TMPDIR": str(scratch)}, tmp_path, "ci",
                        "preview", "--stack", "data-science", "--project-dir", str(platform.ws.root),
                        "--pr-checkout", str(pr), "--rules-commit", sha, "--json")
    assert judged.returncode == 1, judged.stderr[-3000:]
    # The engine's log of that preview (decrypted secrets) went to a PULUMI_HOME of the command's own, now gone:
    # none in the job's PULUMI_HOME, nothing left in the temp directory.
    assert logs_before and logs() == logs_before
    assert list(scratch.iterdir()) == []
    report = json.loads(judged.stdout)
    assert report["verdict"] == "denied"
    assert [v["policy"] for v in report["violations"]] == ["vast-instance-max-dph"]
    assert (report["rules"], report["key"]) == ({"source": "base", "commit": sha}, "preview")
    assert "judged by the base's rules (commit 555555555555), not the pull request's; previewed with its read-only " \
           "preview key" in summary.read_text()
    # The control: had the PR's own team file judged, the same fleet would have passed. So the denial above is
    # the base's rule at work, not something else failing.
    own = platform.ws.root.parent / "own-rules"
    shutil.copytree(platform.ws.root, own, ignore=shutil.ignore_patterns(".pulumi*"))
    shutil.copyfile(pr / "stacks" / "Pulumi.data-science.yaml", own / "stacks" / "Pulumi.data-science.yaml")
    loosened = _vastguard(env, tmp_path, "ci", "preview", "--stack", "data-science", "--project-dir", str(own),
                          "--policy-config", str(pr / "policies" / "teams" / "data-science.json"), "--json")
    shutil.rmtree(own)
    assert loosened.returncode == 0, loosened.stderr[-3000:]
    assert json.loads(loosened.stdout)["verdict"] == "passed"
    # A PR that points the team's Vast URL elsewhere (to collect the preview key) is refused before any key opens.
    stack = yaml.safe_load((pr / "stacks" / "Pulumi.data-science.yaml").read_text())
    stack["config"]["vastai:url"] = "https://collector.example"
    (pr / "stacks" / "Pulumi.data-science.yaml").write_text(yaml.safe_dump(stack))
    refused = _vastguard(env, tmp_path, "ci", "preview", "--stack", "data-science", "--project-dir",
                         str(platform.ws.root), "--pr-checkout", str(pr))
    assert refused.returncode == 1 and "the pull request changes vastai:url in stacks/Pulumi.data-science.yaml" in \
        refused.stderr
    assert "data-science's preview key" not in refused.stderr  # refused before the envelope was opened


def test_a_preview_job_cannot_rent_even_if_the_program_tries(platform: PlatformEnv, tmp_path: Path) -> None:
    env = _pr_job_env(platform, "data-science")
    before = {i.id for i in platform.live("data-science")}
    # What the job holds opens no deploy key: `ci up` stops before the engine starts.
    up = _vastguard(env, tmp_path, "ci", "up", "--stack", "data-science", "--project-dir", str(platform.ws.root))
    assert up.returncode == 1 and "VASTGUARD_DEPLOY_SECRET_DATA_SCIENCE is not set" in up.stderr
    # A program that rents during the job anyway (here: `pulumi up`'s create path, run with the preview key the
    # job can open): Vast refuses the rent, and nothing is rented.
    fleet = platform.ws.fleet("data-science")
    grown = copy.deepcopy(fleet)
    grown["notebook"]["count"] = 2
    platform.ws.set_fleet("data-science", grown)
    control = Control(platform.emulator.url)
    refused_before = [r for r in control.requests("create")["requests"] if r["status"] >= 400]
    try:
        rent = platform.ws.cli.run("up", "--yes", "--skip-preview", stack="data-science", check=False,
                                   extra_env={API_KEY_ENV: platform.key("data-science", "preview")})
    finally:
        platform.ws.set_fleet("data-science", fleet)
    assert rent.returncode != 0
    errors = [line for line in platform.text(rent).splitlines() if "error" in line.lower()]
    assert any("notebook-1: Vast.ai at" in line and "refused the API key (HTTP 401" in line and
               "PUT /api/v0/asks/" in line and "a read-only preview key cannot rent" in line
               for line in errors), "\n".join(errors)  # the rent itself, refused, and the message says why
    refused = [r for r in control.requests("create")["requests"] if r["status"] >= 400]
    assert len(refused) > len(refused_before) and {r["status"] for r in refused[len(refused_before):]} <= {401, 403}
    assert {i.id for i in platform.live("data-science")} == before
    assert platform.ws.preview("data-science").returncode == 0  # the stack is as it was
    # The nightly job's refresh needs no more than that job's preview key: refresh only reads Vast.
    refreshed = _vastguard(env, tmp_path, "ci", "refresh", "--stack", "data-science", "--project-dir",
                           str(platform.ws.root))
    assert refreshed.returncode == 0, refreshed.stderr[-3000:]
    assert "vastguard: data-science's preview key #" in refreshed.stderr


def _grant_billing_write(data: dict[str, Any]) -> None:
    data["config"][PLATFORM_CONFIG]["teams"]["ml-research"]["keys"]["deploy"]["permissions"] = {
        "api": {"instance_read": {}, "instance_write": {}, "misc": {}, "user_read": {}, "billing_write": {}}}


def _second_owner(data: dict[str, Any]) -> None:
    data["config"][PLATFORM_CONFIG]["teams"]["ml-research"]["members"].append(
        {"email": "lead@example.com", "role": "manager"})


def _widen_role(data: dict[str, Any]) -> None:
    role = data["config"][PLATFORM_CONFIG]["teams"]["ml-research"]["roles"][0]
    role["permissions"]["api"]["team_write"] = {}


@pytest.mark.parametrize(("change", "rule", "key", "fields"), [
    (_grant_billing_write, PlatformRuleName.KEY_PERMISSIONS, "not-allowed",
     {"team": "ml-research", "kind": "deploy", "permission": "billing_write"}),
    (_second_owner, PlatformRuleName.MAX_OWNERS, "too-many", {"team": "ml-research", "permission": "team_write"}),
    (_widen_role, PlatformRuleName.ROLE_CEILING, "beyond",
     {"team": "ml-research", "role": "researcher", "permission": "api.team_write"}),
], ids=["key-billing-write", "second-owner", "role-past-ceiling"])
def test_a_platform_change_beyond_the_rules_fails_preview_and_up_changes_nothing(
        platform: PlatformEnv, change: Callable[[dict[str, Any]], None], rule: PlatformRuleName, key: str,
        fields: dict[str, str]) -> None:
    seed = platform.declaration()
    before = access_state(platform)
    edited = copy.deepcopy(seed)
    change(edited)
    platform.declare(edited)
    try:
        preview = platform.preview()
        assert preview.returncode != 0
        assert rule.value in platform.text(preview)
        assert pattern(rule, key, **fields).search(platform.text(preview)), platform.text(preview)[-3000:]
        # `up` stops at the first mandatory violation: a resource rule's, before the stack rules run (a second
        # owner needs a role the team's members may not have, so vast-platform-member-roles stops it first).
        up = platform.up(check=False)
        assert up.returncode != 0 and "mandatory" in platform.text(up) and "vast-platform-" in platform.text(up)
        assert access_state(platform) == before
    finally:
        platform.declare(seed)


def test_rotating_a_key_the_teams_next_up_uses_the_new_one_and_no_instance_is_touched(
        platform: PlatformEnv) -> None:
    team = "data-science"
    old_id, old_key = platform.key_id(team, "deploy"), platform.key(team, "deploy")
    instances = {i.id: i.actual_status for i in platform.live(team)}
    seed = platform.declaration()
    rotated = copy.deepcopy(seed)
    rotated["config"][PLATFORM_CONFIG]["teams"][team]["keys"]["deploy"]["rotated"] = "2026-12-01"
    platform.declare(rotated)
    preview = platform.preview()
    assert preview.returncode == 0 and "+-" in preview.stdout, platform.text(preview)[-2000:]
    platform.up()
    new_id = platform.key_id(team, "deploy")
    assert new_id != old_id
    # Create before delete: the new key existed before the old one was revoked.
    log = [(e.api_route, int(e.args.get("key_id") or e.args.get("id") or 0))
           for e in platform.emulator.market.state.audit
           if e.account_id == platform.team_ids[team] and e.api_route in ("api.apikey.create", "api.apikey.delete")]
    assert log.index(("api.apikey.delete", old_id)) > log.index(("api.apikey.create", new_id)), log
    with platform.client(old_key) as old, pytest.raises(AuthError):
        old.list_instances()
    # The team's next run opens the new envelope; nothing running is stopped or replaced.
    calls_before = len(platform.emulator.market.requests.records())
    platform.ws.refresh(team)
    platform.ws.up(team, message="after the rotation")
    mutating = [r for r in platform.emulator.market.requests.records()[calls_before:]
                if r.operation in ("create", "manage", "destroy")]
    assert mutating == []
    assert {i.id: i.actual_status for i in platform.live(team)} == instances
    keyed = {r.account_id for r in platform.emulator.market.requests.records()[calls_before:] if r.account_id}
    assert keyed == {platform.team_ids[team]}
    assert platform.key(team, "deploy") != old_key


def test_out_of_band_changes_show_in_refresh_and_the_next_preview_denies_or_restores_them(
        platform: PlatformEnv, tmp_path: Path) -> None:
    team, team_id = "ml-research", platform.team_ids["ml-research"]
    cli = Cli.at(platform.emulator.url, platform.console_keys[team], tmp_path / "home")
    role_id = next(r.id for r in platform.emulator.market.state.roles.values()
                   if r.team_id == team_id and r.name == "researcher")
    declared = platform.emulator.market.state.roles[role_id].permissions.to_wire()
    widened = tmp_path / "widened.json"
    widened.write_text(json.dumps({"api": {**declared["api"], "team_write": {}}}))
    cli.run("update", "team-role", str(role_id), "--name", "researcher", "--permissions", str(widened))
    preview_key_id = platform.key_id(team, "preview")
    assert "Successfully Deleted API Key" in cli.run("delete", "api-key", str(preview_key_id)).stdout
    eve = make_account(platform.emulator, balance=1, username="eve")
    cli.run("invite", "member", "--email", "eve@example.com", "--role", "manager")
    Control(platform.emulator.url).accept_invitation(team_id, "eve@example.com")

    refresh = platform.ws.refresh("platform")
    text = platform.text(refresh)
    assert "ml-research-role-researcher" in text and "ml-research-key-preview" in text and "ml-research" in text
    team_outputs = json.loads(platform.ws.cli.run("stack", "export", stack="platform").stdout)
    team_state = next(r for r in team_outputs["deployment"]["resources"] if r["urn"].endswith("::ml-research")
                      and r["type"].endswith("vastai:Team"))
    assert "eve@example.com" in {m["email"] for m in team_state["outputs"]["members"]}
    role_state = next(r for r in team_outputs["deployment"]["resources"]
                      if r["urn"].endswith("::ml-research-role-researcher"))
    assert "team_write" in role_state["outputs"]["permissions"]["api"]
    assert not any(r["urn"].endswith("::ml-research-key-preview") for r in team_outputs["deployment"]["resources"])

    # The member added behind the platform's back: the next preview denies.
    preview = platform.preview()
    assert preview.returncode != 0
    assert pattern(PlatformRuleName.UNDECLARED_MEMBERS, "undeclared", team=team, email="eve@example.com",
                   role="manager").search(platform.text(preview)), platform.text(preview)[-3000:]
    # Once she is removed, the preview restores the rest: the role narrowed again, a new preview key made.
    cli.run("remove", "member", str(eve.id))
    platform.ws.refresh("platform")
    preview = platform.preview()
    assert preview.returncode == 0, platform.text(preview)[-3000:]
    assert "ml-research-role-researcher" in preview.stdout and "ml-research-key-preview" in preview.stdout
    platform.up()
    assert platform.emulator.market.state.roles[role_id].permissions.to_wire() == declared
    assert platform.key_id(team, "preview") != preview_key_id
    assert platform.ws.preview(team).returncode == 0  # the team previews with its new preview key


def test_a_bad_declaration_fails_before_any_call_with_the_field_named(platform: PlatformEnv) -> None:
    seed = platform.declaration()
    bad = copy.deepcopy(seed)
    teams = bad["config"][PLATFORM_CONFIG]["teams"]
    teams["ml-research"]["roles"].append(dict(teams["ml-research"]["roles"][0]))
    teams["ml-research"]["members"][0]["email"] = "ada-at-example.com"
    teams["data-science"]["keys"]["deploy"]["permissions"] = {"api": {"instance_writ": {}}}
    teams["ml-engineering"]["roles"][0]["permissions"]["api"]["instance_read"] = {
        "api.instance.show": {"constraints": {"id": {"lt": 5}}}}
    platform.declare(bad)
    before = len(platform.emulator.market.requests.records())
    try:
        preview = platform.preview()
        text = platform.text(preview)
        assert preview.returncode != 0
        for field in ("teams.ml-research.roles[1].name: duplicate role 'researcher'",
                      "teams.ml-research.members[0].email: not an e-mail address",
                      "teams.data-science.keys.deploy.permissions.api.instance_writ: unknown category",
                      "teams.ml-engineering.roles[0].permissions.api.instance_read.api.instance.show.constraints.id"
                      ".lt: unknown operator 'lt'"):
            assert field in text, text[-3000:]
        assert platform.emulator.market.requests.records()[before:] == []
    finally:
        platform.declare(seed)


def test_team_add_then_remove_through_the_platform(platform: PlatformEnv, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("PULUMI_BACKEND_URL", "PULUMI_HOME", "PULUMI_CONFIG_PASSPHRASE", "VAST_URL"):
        if name in platform.ws.cli.env:
            monkeypatch.setenv(name, platform.ws.cli.env[name])
    for name, value in platform.ws.cli.env.items():
        if name.startswith("VASTGUARD_"):
            monkeypatch.setenv(name, value)
    root = str(platform.ws.root)
    assert main(["team", "add", "vision", "--root", root]) == 0
    platform.up()
    assert "vision" in platform.outputs()["pending_bootstrap"]
    vision_id = platform.outputs()["teams"]["vision"]["team_id"]
    assert platform.emulator.market.state.accounts[vision_id].kind == "team"
    capsys.readouterr()

    owner_balance = Control(platform.emulator.url).account(platform.owner.id)["balance"]
    left = Control(platform.emulator.url).account(platform.team_ids["data-science"])["balance"]
    assert platform.live("data-science")
    assert main(["team", "remove", "data-science", "--root", root]) == 0
    assert "destroyed" in capsys.readouterr().out
    assert platform.live("data-science") == []  # its instances first
    assert not platform.ws.stack_file("data-science").exists()
    assert "data-science" not in platform.declaration()["config"][PLATFORM_CONFIG]["teams"]
    platform.up()  # then the platform deletes its keys, members, roles and the team
    assert platform.account("data-science").deleted_at is not None
    refunded = Control(platform.emulator.url).account(platform.owner.id)["balance"]
    assert refunded >= owner_balance + left - 1  # what was left came back to the owner (minus any accrual)
    assert os.environ.get("PULUMI_BACKEND_URL") == platform.ws.cli.env["PULUMI_BACKEND_URL"]
