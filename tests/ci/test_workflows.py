"""The GitHub Actions workflows: actionlint-clean (actionlint is built from the Go module proxy at a pinned
version by engine/tools.py, so a fresh machine builds it here), and thin: secrets reach only `env:`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from engine import repo_root
from engine.tools import ensure_actionlint

WORKFLOWS = repo_root() / ".github" / "workflows"


@pytest.fixture(scope="module")
def actionlint() -> Path:
    # No skip: on CI and on a fresh machine it is built (needs Go, like the engine); failing says what to install.
    return ensure_actionlint()


def lint(actionlint: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck/pyflakes off: results must not depend on what else the machine has installed.
    return subprocess.run([str(actionlint), "-no-color", "-oneline", "-shellcheck=", "-pyflakes="], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_workflows_pass_actionlint(actionlint: Path) -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == ["deploy.yml", "guard.yml", "nightly.yml", "preview.yml"]
    result = lint(actionlint, repo_root())
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "bad.yml").write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # actionlint looks for the repository root
    result = lint(actionlint, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "bad.yml" in result.stdout


def _steps(path: Path) -> list[dict[str, object]]:
    doc = yaml.safe_load(path.read_text())
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml", "nightly.yml", "guard.yml"])
def test_secrets_only_reach_env_never_a_command_line(name: str) -> None:
    for step in _steps(WORKFLOWS / name):
        run = str(step.get("run", ""))
        assert "secrets" not in run, step
        assert not re.search(r"\$\{\{.*(VASTAI_API_KEY|secret).*\}\}", run), step
        assert "echo \"$VASTAI_API_KEY" not in run and "$VASTAI_API_KEY" not in run, step


def test_each_workflow_does_its_job_through_dev() -> None:
    runs = {name: "\n".join(str(s.get("run", "")) for s in _steps(WORKFLOWS / name))
            for name in ("preview.yml", "deploy.yml", "nightly.yml")}
    assert "./dev vastguard ci preview" in runs["preview.yml"]
    assert "./dev vastguard ci up" in runs["deploy.yml"]
    assert "./dev pulumi refresh" in runs["nightly.yml"]
    assert "./dev vastguard reconcile" in runs["nightly.yml"]
    nightly = runs["nightly.yml"]
    assert nightly.index("./dev pulumi refresh") < nightly.index("./dev vastguard ci audit") < nightly.index(
        "./dev vastguard reconcile")  # the audit judges the refreshed state
    for text in runs.values():
        assert "./dev vastguard ci set-key" in text
    on = {name: yaml.safe_load((WORKFLOWS / name).read_text())[True] for name in runs}  # YAML 1.1: on -> True
    assert "pull_request" in on["preview.yml"]
    assert on["deploy.yml"]["push"]["branches"] == ["main"]
    assert "schedule" in on["nightly.yml"]


def test_the_guard_runs_every_fifteen_minutes_after_the_prepaid_allocation() -> None:
    doc = yaml.safe_load((WORKFLOWS / "guard.yml").read_text())
    assert doc[True]["schedule"] == [{"cron": "*/15 * * * *"}]
    run = "\n".join(str(s.get("run", "")) for s in _steps(WORKFLOWS / "guard.yml"))
    assert run.index("./dev vastguard budget allocate") < run.index("./dev vastguard guard")
    assert 'export "$KEY_NAME=$TEAM_KEY"' in run  # a shell builtin: the key is in no process's argv
