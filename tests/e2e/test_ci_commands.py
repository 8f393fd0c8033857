"""The CI steps (vastguard/ci.py) through the real engine against the emulator: the key goes in from the
environment; `ci preview --json` is judged from the engine's event log and checked against its JSON Schema for
a passing, an advisory and a denied preview (with the job summary beside it); `ci up` deploys; and the nightly
`ci audit` (`pulumi policy analyze` of the deployed state) finds an exception that expired since the deploy."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from emulator import EmulatorServer
from engine import Engine, repo_root
from tests.e2e.conftest import early_in_the_month
from vastguard import ci
from vastguard.cli import main
from vastguard.workspace import Workspace, team_policy_config

pytestmark = pytest.mark.engine

pytestmark = pytest.mark.engine

TEAM = "data-science"
SCHEMA = json.loads((repo_root() / "vastguard" / "schemas" / "ci-report.schema.json").read_text())


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    document: dict[str, Any] = json.loads(captured.out)
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    return code, document, captured.err


def team_file(tmp_path: Path, name: str, edit: dict[str, dict[str, Any]]) -> Path:
    data = json.loads(team_policy_config(TEAM).read_text())
    for policy, values in edit.items():
        data[policy] = {**data[policy], **values}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def test_ci_set_key_preview_up_and_nightly_audit(engine: Engine, pulumi_home: Path, tmp_path: Path,
                                                 fleet_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    api_key = f"{TEAM}-{secrets.token_hex(16)}"
    early_in_the_month(fleet_emulator)  # the notebook exceeds $2 today only with most of the day left
    account = fleet_emulator.create_account(api_key=api_key, balance=1000, username=TEAM)
    ws = Workspace.create(engine, tmp_path / "ws", state_dir=tmp_path / "state", vast_url=fleet_emulator.url,
                          extra_env={"PULUMI_HOME": str(pulumi_home),
                                     "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}"})
    summary = tmp_path / "summary.md"
    for name, value in {"PULUMI_HOME": str(pulumi_home), "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
                        "VAST_URL": fleet_emulator.url, "GITHUB_STEP_SUMMARY": str(summary),
                        "GITHUB_ACTIONS": "true", ci.KEY_ENV: api_key}.items():
        monkeypatch.setenv(name, value)
    project = ["--project-dir", str(ws.root)]
    ws.own_key(TEAM)  # this team brings its own key (the seed takes its keys from the platform stack)

    assert main(["ci", "set-key", "--stack", TEAM, *project]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == f"::add-mask::{api_key}"  # the runner's mask command: the only place it is printed
    assert api_key not in out.err
    assert api_key not in ws.stack_file(TEAM).read_text()  # stored encrypted

    # Passing: a new stack, one instance at its quote.
    code, doc, _ = run_json(capsys, "ci", "preview", "--stack", TEAM, *project)
    assert (code, doc["verdict"], doc["violations"], doc["changes"]) == (0, "passed", [], {"create": 1})
    assert doc["cost"]["before"]["hourly"] == "0" and doc["cost"]["after"]["basis"] == {"quote": 1}
    hourly = float(doc["cost"]["after"]["hourly"])
    assert 0 < hourly <= 0.30  # the team's cap
    assert f"| {TEAM} | ✅ passed | 1 create | $0.00 -> ${hourly:.2f}" in summary.read_text()

    # Advisory: the same fleet against a team file that warns from 5% of the budget.
    summary.write_text("")
    warn = team_file(tmp_path, "warn", {"vast-daily-budget-warning": {"warn_share": 0.05}})
    code, doc, _ = run_json(capsys, "ci", "preview", "--stack", TEAM, "--policy-config", str(warn), *project)
    assert (code, doc["verdict"]) == (0, "advisory")
    assert [(v["policy"], v["level"]) for v in doc["violations"]] == [("vast-daily-budget-warning", "advisory")]
    assert "⚠️ passed with advisories" in summary.read_text()

    # Denied: five instances for a team capped at two; nothing is rented by a preview.
    fleet = ws.fleet(TEAM)
    fleet["notebook"]["count"] = 5
    ws.set_fleet(TEAM, fleet)
    summary.write_text("")
    code, doc, _ = run_json(capsys, "ci", "preview", "--stack", TEAM, *project)
    assert (code, doc["verdict"]) == (1, "denied")
    assert {"vast-max-instances", "vast-max-gpus"} <= {v["policy"] for v in doc["violations"]
                                                       if v["level"] == "mandatory"}
    assert doc["cost"]["after"]["instances"] == 5 and doc["cost"]["after"]["hourly"] is not None
    assert "❌ denied by policy" in summary.read_text() and "**[mandatory] vast-max-instances**" in summary.read_text()
    assert fleet_emulator.market.all_instances(account)[0] == []

    # Deploy one instance under a time-boxed exception: a $2/day budget, raised to $10 until 2099.
    fleet["notebook"]["count"] = 1
    ws.set_fleet(TEAM, fleet)
    grant = {"allow": 10, "reason": "notebook for the Q4 review", "approver": "cfo", "expires": "2099-12-31"}
    active = team_file(tmp_path, "active", {
        "vast-daily-budget": {"daily_budget": 2, "exceptions": [grant]},
        "vast-daily-budget-warning": {"daily_budget": 10},  # warns from $8: not this notebook
        "vast-policy-exceptions": {"exceptions": [{"rule": "vast-daily-budget", **grant}]}})
    monkeypatch.setattr(ci, "team_policy_config", lambda team: active)  # `ci up` deploys with the team's file
    summary.write_text("")
    assert main(["ci", "up", "--stack", TEAM, "--message", "ci test", *project]) == 0
    assert "✅ deployed | 1 |" in summary.read_text()
    assert len(fleet_emulator.market.all_instances(account)[0]) == 1
    capsys.readouterr()

    # Next morning: still within the exception, the audit passes (the active exception is reported).
    code, doc, _ = run_json(capsys, "ci", "audit", "--stack", TEAM, "--policy-config", str(active), *project)
    assert (code, doc["report"], doc["verdict"]) == (0, "policy-audit", "advisory")
    assert [v["policy"] for v in doc["violations"]] == ["vast-policy-exceptions"]
    assert "active" in doc["violations"][0]["message"]

    # The exception has expired: the deployed stack no longer complies, and the nightly audit says so.
    expired_grant = {**grant, "expires": "2020-01-31"}
    expired = team_file(tmp_path, "expired", {
        "vast-daily-budget": {"daily_budget": 2, "exceptions": [expired_grant]},
        "vast-daily-budget-warning": {"daily_budget": 10},  # warns from $8: not this notebook
        "vast-policy-exceptions": {"exceptions": [{"rule": "vast-daily-budget", **expired_grant}]}})
    summary.write_text("")
    code, doc, _ = run_json(capsys, "ci", "audit", "--stack", TEAM, "--policy-config", str(expired), *project)
    assert (code, doc["verdict"]) == (1, "denied")
    found = {v["policy"]: v for v in doc["violations"]}
    assert found["vast-daily-budget"]["level"] == "mandatory"
    assert "exceeds the daily budget $2.00" in found["vast-daily-budget"]["message"]
    assert found["vast-policy-exceptions"]["level"] == "advisory"
    assert "expired" in found["vast-policy-exceptions"]["message"]
    text = summary.read_text()
    assert "## vastguard nightly policy audit" in text and "❌ no longer complies" in text
    assert len(fleet_emulator.market.all_instances(account)[0]) == 1  # an audit changes nothing

    captured = capsys.readouterr()
    assert api_key not in captured.out + captured.err + summary.read_text()
    ws.destroy(TEAM)
