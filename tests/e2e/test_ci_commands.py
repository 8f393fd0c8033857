"""The CI steps (vastguard/ci.py) through the real engine against the emulator: the key goes in from the
environment, a within-limits preview passes with its cost change in the job summary, an over-budget one is
denied with the policy report, and `ci up` deploys and reports the deployed cost."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from emulator import EmulatorServer
from engine import Engine
from vastguard import ci
from vastguard.cli import main
from vastguard.workspace import Workspace

TEAM = "data-science"


def test_ci_set_key_preview_and_up(engine: Engine, pulumi_home: Path, tmp_path: Path, fleet_emulator: EmulatorServer,
                                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    api_key = f"{TEAM}-{secrets.token_hex(16)}"
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

    assert main(["ci", "set-key", "--stack", TEAM, *project]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == f"::add-mask::{api_key}"  # the runner's mask command: the only place it is printed
    assert api_key not in out.err
    assert api_key not in ws.stack_file(TEAM).read_text()  # stored encrypted

    assert main(["ci", "preview", "--stack", TEAM, *project]) == 0
    text = summary.read_text()
    assert f"| {TEAM} | ✅ passed | 1 create | $0.00 -> $0." in text

    fleet = ws.fleet(TEAM)
    fleet["notebook"]["count"] = 5
    ws.set_fleet(TEAM, fleet)
    summary.write_text("")
    assert main(["ci", "preview", "--stack", TEAM, *project]) == 1
    text = summary.read_text()
    assert "❌ denied by policy" in text
    assert "**[mandatory] vast-max-instances**" in text

    fleet["notebook"]["count"] = 1
    ws.set_fleet(TEAM, fleet)
    summary.write_text("")
    assert main(["ci", "up", "--stack", TEAM, "--message", "ci test", *project]) == 0
    assert "✅ deployed | 1 |" in summary.read_text()
    assert len(fleet_emulator.market.all_instances(account)[0]) == 1
    captured = capsys.readouterr()
    assert api_key not in captured.out + captured.err + summary.read_text()
    ws.destroy(TEAM)
