"""The errors a user meets first that start no engine (issue 7): no Go and no Pulumi CLI, a missing team policy
file. The ones that surface through `pulumi preview` are in tests/e2e/test_first_errors.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine import PULUMI_VERSION, EngineError, ensure, repo_root
from vastguard import ci
from vastguard.cli import main, missing_policy_config


def test_missing_team_config_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["preview", "--stack", "vision", "--policy-pack", "policies",
            "--policy-pack-config", "policies/teams/vision.json"]
    problem = missing_policy_config(args, repo_root())
    assert problem is not None
    assert "./dev vastguard team add vision" in problem
    assert missing_policy_config(["--policy-pack-config=policies/teams/ml-research.json"], repo_root()) is None
    # `./dev pulumi ...` stops before starting the engine with that message.
    assert main(["pulumi", *args]) == 1
    assert "./dev vastguard team add vision" in capsys.readouterr().err
    # So does the CI preview step.
    assert main(["ci", "preview", "--stack", "vision"]) == 1
    assert "./dev vastguard team add vision" in capsys.readouterr().err
    assert ci.known_teams(repo_root())  # the seeds have their files


def test_no_go_and_no_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Also tests/engine/test_engine_tooling.py::test_no_go_and_no_cli_says_what_to_install; here through the
    `vastguard` command a user runs, and through ./dev's first step."""
    monkeypatch.setenv("VASTGUARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    with pytest.raises(EngineError) as err:
        ensure(log=lambda _m: None)
    assert "rerun ./dev setup" in str(err.value)
    assert f"install Pulumi CLI v{PULUMI_VERSION}" in str(err.value)
    result = subprocess.run([str(repo_root() / ".venv" / "bin" / "python"), "-m", "vastguard.cli", "engine"],
                            env={"PATH": str(tmp_path / "empty-path"), "VASTGUARD_CACHE_DIR": str(tmp_path / "c"),
                                 "HOME": str(tmp_path)},
                            capture_output=True, text=True, timeout=60, check=False, cwd=repo_root())
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot provide the Pulumi engine")
    assert "install Go >= 1.25" in result.stderr
