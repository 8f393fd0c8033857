"""vastguard/ci.py: which stacks a change touches, the preview cost change, the policy report, the summaries."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine import repo_root
from fleet.costs import FleetCost
from vastguard import ci
from vastguard.cli import main

TEAMS = ["data-science", "ml-engineering", "ml-research"]


@pytest.mark.parametrize(("paths", "expected"), [
    (["stacks/Pulumi.ml-research.yaml"], ["ml-research"]),
    (["policies/teams/data-science.json", "README.md"], ["data-science"]),
    (["stacks/Pulumi.ml-research.yaml", "policies/teams/data-science.json"], ["data-science", "ml-research"]),
    (["README.md", "docs/x.md", "tests/e2e/test_fleet.py", "policies/teams/_template.json"], []),
    (["program/fleet_program.py"], TEAMS),
    (["policies/pack.py"], TEAMS),
    (["providers/vast_instance.py"], TEAMS),
    (["requirements.lock"], TEAMS),
    (["Pulumi.yaml"], TEAMS),
    (["stacks/Pulumi.gone.yaml"], []),  # a removed team's stack: nothing to preview
])
def test_changed_teams(paths: list[str], expected: list[str]) -> None:
    assert ci.changed_teams(paths, TEAMS) == expected


def test_known_teams_are_the_repositorys_stacks() -> None:
    assert ci.known_teams(repo_root()) == TEAMS


def test_secret_names_match_reconcile_env_names() -> None:
    assert ci.secret_name("ml-research") == "VASTGUARD_KEY_ML_RESEARCH"
    assert ci.matrix(["data-science"]) == {"include": [{"team": "data-science",
                                                        "secret": "VASTGUARD_KEY_DATA_SCIENCE"}]}


def test_github_outputs() -> None:
    assert ci.github_outputs([]) == 'matrix={"include": []}\nany=false\n'
    assert ci.github_outputs(["a"]).endswith("any=true\n")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], cwd=repo,
                          capture_output=True, text=True, check=True).stdout.strip()


def test_select_teams_from_a_git_diff(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()
    for team in TEAMS:
        (tmp_path / "stacks" / f"Pulumi.{team}.yaml").write_text("config: {}\n")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "base")
    base = _git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "stacks" / "Pulumi.ml-research.yaml").write_text("config: {a: 1}\n")
    _git(tmp_path, "commit", "-q", "-am", "change")
    assert ci.select_teams(base, "HEAD", tmp_path) == ["ml-research"]
    assert ci.select_teams("0" * 40, "HEAD", tmp_path) == TEAMS  # a push that created the branch
    assert ci.select_teams(None, "HEAD", tmp_path) == TEAMS


def test_changed_command_writes_github_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    assert main(["ci", "changed", "--all"]) == 0
    assert json.loads(capsys.readouterr().out) == ci.matrix(TEAMS)
    assert out.read_text().splitlines()[-1] == "any=true"


# --- cost change ------------------------------------------------------------------------------------------------

URN = "urn:pulumi:t::vastguard::pulumi-python:dynamic/vastai:Instance::"


def step(op: str, name: str, inputs: dict[str, Any] | None = None, old: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    out: dict[str, Any] = {"op": op, "urn": URN + name}
    if inputs is not None:
        out["newState"] = {"type": "pulumi-python:dynamic/vastai:Instance", "inputs": inputs}
    if old is not None:
        out["oldState"] = {"type": "pulumi-python:dynamic/vastai:Instance", "outputs": old}
    return out


def rented(dph: float, state: str = "running") -> dict[str, Any]:
    return {"instance_id": 1, "dph_total": dph, "state": state, "disk_gb": 72, "storage_cost": 0.2}


def quoted(dph: float, state: str = "running") -> dict[str, Any]:
    return {"state": state, "disk_gb": 72, "quote": {"dph_total": dph, "storage_cost": 0.2}}


def test_cost_change_new_stack() -> None:
    before, after = ci.cost_change({"steps": [step("create", "a-0", quoted(0.25)),
                                              step("create", "a-1", quoted(0.30))]}, {})
    assert before.hourly == 0
    assert after.hourly == Decimal("0.55")


def test_cost_change_counts_unlisted_instances_removes_deleted_prices_new_at_quote() -> None:
    outputs = {"fleet": {"keep-0": rented(0.40), "gone-0": rented(0.50), "stop-0": rented(0.60),
                         "swap-0": rented(0.70)}}
    preview = {"steps": [
        {"op": "same", "urn": "urn:pulumi:t::vastguard::pulumi:pulumi:Stack::vastguard-t",
         "newState": {"type": "pulumi:pulumi:Stack"}},
        step("delete", "gone-0", None, rented(0.50)),
        step("update", "stop-0", {**quoted(0.60), "state": "stopped"}, rented(0.60)),
        step("replace", "swap-0", quoted(0.20), rented(0.70)),
        step("delete-replaced", "swap-0", None, rented(0.70)),
        step("create", "new-0", quoted(0.10)),
    ]}
    before, after = ci.cost_change(preview, outputs)
    assert before.hourly == Decimal("2.2")
    stopped_storage = Decimal("0.2") * 72 / 720  # $0.02/h: storage only
    assert after.hourly == Decimal("0.40") + stopped_storage + Decimal("0.20") + Decimal("0.10")
    assert after.daily == after.hourly * 24
    assert ci.instance_changes(preview) == {"delete": 1, "update": 1, "replace": 1, "create": 1}


POLICY_TEXT = """\
Previewing update (data-science):
@ previewing update....
Policies:
    ❌ vastguard@v0.1.0 (local: /work/main/policies)
        - [mandatory]  vast-daily-budget  (pulumi:pulumi:Stack: vastguard-data-science)
          Keeps the stack's estimated daily spend (estimated $/h x 24) within the team's daily budget.
          data-science: estimated daily spend $20.05 exceeds the daily budget $10.00; lower count
        - [advisory]  vast-daily-budget-warning  (pulumi:pulumi:Stack: vastguard-data-science)
          Warns when the stack's estimated daily spend reaches a share of the team's daily budget.
          data-science: estimated daily spend $20.05 is 201% of the daily budget $10.00

Outputs:
    team: "data-science"
"""


def test_parse_policy_report() -> None:
    found = ci.parse_policy_report(POLICY_TEXT)
    assert [(v.level, v.policy) for v in found] == [("mandatory", "vast-daily-budget"),
                                                    ("advisory", "vast-daily-budget-warning")]
    assert found[0].message == "data-science: estimated daily spend $20.05 exceeds the daily budget $10.00; lower count"
    passed = "Policies:\n    ✅ vastguard@v0.1.0 (local: /work/main/policies)\n\nOutputs:\n"
    assert ci.parse_policy_report(passed) == []
    assert ci.parse_policy_report("no policies section") == []


def test_preview_summary_shows_verdict_cost_change_and_report() -> None:
    denied = ci.PreviewResult("data-science", False, FleetCost.from_hourly(Decimal("0.16")),
                              FleetCost.from_hourly(Decimal("0.84")), {"create": 4, "same": 2},
                              ci.parse_policy_report(POLICY_TEXT))
    fine = ci.PreviewResult("ml-research", True, FleetCost.from_hourly(Decimal("1.00")),
                            FleetCost.from_hourly(Decimal("0.50")), {"delete": 1})
    md = ci.render_preview_summary([denied, fine])
    assert ("| data-science | ❌ denied by policy | 4 create | $0.16 -> $0.84 (+$0.68) | $3.84 -> $20.16 (+$16.32) |"
            in md)
    assert "| ml-research | ✅ passed | 1 delete | $1.00 -> $0.50 (-$0.50) |" in md
    assert "- **[mandatory] vast-daily-budget**: data-science: estimated daily spend $20.05" in md
    failed = ci.PreviewResult("x", False, FleetCost.from_hourly(Decimal(0)), FleetCost.from_hourly(Decimal(0)),
                              error="error: boom")
    assert failed.verdict == "preview failed"
    assert "error: boom" in ci.render_preview_summary([failed])
    advisory = ci.PreviewResult("x", True, FleetCost.from_hourly(Decimal(0)), FleetCost.from_hourly(Decimal(0)),
                                violations=[ci.Violation("advisory", "p", "m")])
    assert advisory.verdict == "passed with advisories"


def test_deploy_summary() -> None:
    md = ci.render_deploy_summary("t", {"estimated_cost": {"hourly": 0.16, "daily": 3.93, "monthly": 119.68},
                                        "fleet": {"a-0": {}}}, True)
    assert "| t | ✅ deployed | 1 | $0.16 | $3.93 | $119.68 |" in md
    assert "failed" in ci.render_deploy_summary("t", {}, False)


def test_set_key_without_the_secret_says_which_secret_to_add(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(ci.KEY_ENV, raising=False)
    assert main(["ci", "set-key", "--stack", "ml-research"]) == 1
    assert "VASTGUARD_KEY_ML_RESEARCH" in capsys.readouterr().err
