"""The GitHub Actions workflows: actionlint-clean (actionlint is built from the Go module proxy at a pinned
version by engine/tools.py, so a fresh machine builds it here), and thin: secrets reach only `env:`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import repo_root
from engine.tools import ensure_actionlint

WORKFLOWS = repo_root() / ".github" / "workflows"
NAMES = ["preview.yml", "deploy.yml", "nightly.yml", "guard.yml"]


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


@pytest.mark.parametrize("name", NAMES)
def test_secrets_only_reach_env_never_a_command_line(name: str) -> None:
    for step in _steps(WORKFLOWS / name):
        run = str(step.get("run", ""))
        assert "secrets" not in run, step
        assert not re.search(r"\$\{\{.*(VASTAI_API_KEY|secret).*\}\}", run), step
        assert "echo \"$VASTAI_API_KEY" not in run and "$VASTAI_API_KEY" not in run, step


def _doc(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return doc


def _secrets_of(job: dict[str, Any]) -> set[str]:
    """The secrets a job can read: `secrets.NAME` and `secrets[matrix.FIELD]` anywhere in it."""
    text = yaml.safe_dump(job)
    return set(re.findall(r"secrets\.([A-Za-z0-9_]+)", text)) | {
        f"matrix.{m}" for m in re.findall(r"secrets\[matrix\.([a-z_]+)\]", text)}


@pytest.mark.parametrize("name", NAMES)
def test_every_workflow_has_the_minimum_permissions(name: str) -> None:
    doc = _doc(name)
    assert doc["permissions"] == {}, "top level: nothing; each job asks for what it needs"
    for job_name, job in doc["jobs"].items():
        assert job.get("permissions") == {"contents": "read"}, (name, job_name)  # no job writes anything on GitHub


def test_preview_jobs_hold_the_preview_secret_only_and_run_the_bases_code() -> None:
    doc = _doc("preview.yml")
    raw: Any = yaml.safe_load((WORKFLOWS / "preview.yml").read_text())
    # YAML 1.1 reads `on` as True. pull_request_target: the base's workflow file runs, so a PR cannot rewrite the
    # job that holds the secrets (on pull_request it could); nothing of the PR is executed (below).
    assert raw[True] == {"pull_request_target": None}
    jobs = doc["jobs"]
    preview = jobs["preview"]
    assert _secrets_of(preview) == {"PULUMI_BACKEND_URL", "matrix.passphrase", "matrix.preview_secret",
                                    "matrix.aws_access_key_id", "matrix.aws_secret_access_key"}
    assert "deploy" not in yaml.safe_dump(doc).replace("deploy key", "")  # no deploy secret, no deploy step
    assert _secrets_of(jobs["changes"]) == set() == _secrets_of(jobs["platform-review"])
    for job_name, job in jobs.items():
        checkouts = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")]
        trusted, *others = checkouts
        assert trusted["with"]["ref"] == "${{ github.event.pull_request.base.sha }}" and "path" not in trusted["with"]
        assert [o["with"]["path"] for o in others] == ["pr"], job_name
        for step in checkouts:
            assert step["with"]["persist-credentials"] is False, (job_name, step)
            # The PR's code is never run: actions come from the trusted tree, no command enters pr/.
        for step in job["steps"]:
            assert not str(step.get("uses", "")).startswith(("./pr", "pr/")), step
            run = str(step.get("run", ""))
            assert "pr/" not in run and "cd pr" not in run and "-C pr" not in run, step
    runs = "\n".join(str(s.get("run", "")) for s in preview["steps"])
    assert "./dev vastguard ci preview --stack \"$TEAM\" --pr-checkout pr --rules-commit \"$BASE_SHA\"" in runs
    assert "set-key" not in runs  # a preview job never stores a full key
    # Only the preview step holds secrets: not the checkouts, not the setup (pip installs, the engine build).
    assert [s.get("name") for s in preview["steps"] if _secrets_of(s)] == [
        "Preview the PR's fleet with the base's rules and the preview key (the only step with secrets)"]
    assert not _secrets_of(preview.get("env", {}))
    assert jobs["platform-review"]["if"] == "needs.changes.outputs.platform_review == 'true'"
    assert "platform_review" in jobs["changes"]["outputs"]


def test_deploy_secrets_only_in_the_deploy_job_inside_the_teams_environment() -> None:
    holders = {(name, job_name) for name in NAMES for job_name, job in _doc(name)["jobs"].items()
               if "matrix.deploy_secret" in _secrets_of(job)}
    assert holders == {("deploy.yml", "up"), ("guard.yml", "allocate"), ("guard.yml", "guard")}
    up = _doc("deploy.yml")["jobs"]["up"]
    assert up["environment"] == "${{ matrix.team }}"  # a GitHub environment per team, with required reviewers
    guard = _doc("guard.yml")["jobs"]
    assert guard["guard"]["environment"] == "${{ matrix.team }}-guard"  # main only, unattended: no reviewers
    assert guard["allocate"]["environment"] == "platform"
    owner_key = {(name, job_name) for name in NAMES for job_name, job in _doc(name)["jobs"].items()
                 if "VASTGUARD_PLATFORM_KEY" in _secrets_of(job)}
    assert owner_key == {("guard.yml", "allocate")}  # the platform owner's key: one job, in the platform's environment
    nightly = _doc("nightly.yml")["jobs"]["refresh-and-reconcile"]
    assert "environment" not in nightly and "matrix.preview_secret" in _secrets_of(nightly)


@pytest.mark.parametrize("name", NAMES)
def test_each_team_job_uses_its_own_passphrase_and_pulumi_home_and_removes_it(name: str) -> None:
    for job_name, job in _doc(name)["jobs"].items():
        held = _secrets_of(job)
        if not held:
            continue
        assert "PULUMI_CONFIG_PASSPHRASE" not in held, (name, job_name)  # no passphrase shared by all teams
        envs = [job.get("env", {}), *(step.get("env", {}) for step in job["steps"])]
        passphrases = {e["PULUMI_CONFIG_PASSPHRASE"] for e in envs if "PULUMI_CONFIG_PASSPHRASE" in e}
        assert passphrases == ({"${{ secrets[matrix.passphrase] }}"} if name != "guard.yml" else set()), \
            (name, job_name)  # (the guard decrypts no stack)
        assert not _secrets_of(job.get("env", {})), (name, job_name)  # secrets per step, never the whole job
        for step in job["steps"]:  # the checkouts and the setup (pip installs, the engine build) hold none
            if "uses" in step:
                assert not _secrets_of(step), (name, job_name, step)
        first = job["steps"][0]  # `runner.temp` is not available in a job's env, hence a step
        assert first["run"] == 'echo "PULUMI_HOME=$RUNNER_TEMP/pulumi-home" >> "$GITHUB_ENV"', (name, job_name)
        last = job["steps"][-1]
        assert (last["if"], last["run"]) == ("always()", 'rm -rf "$PULUMI_HOME"'), (name, job_name)


def test_each_workflow_does_its_job_through_dev() -> None:
    runs = {name: "\n".join(str(s.get("run", "")) for s in _steps(WORKFLOWS / name))
            for name in ("preview.yml", "deploy.yml", "nightly.yml")}
    assert "./dev vastguard ci preview" in runs["preview.yml"]
    assert "./dev vastguard ci up" in runs["deploy.yml"]
    assert "./dev vastguard ci refresh" in runs["nightly.yml"]
    assert "./dev vastguard reconcile" in runs["nightly.yml"]
    nightly = runs["nightly.yml"]
    assert nightly.index("./dev vastguard ci refresh") < nightly.index("./dev vastguard ci audit") < nightly.index(
        "./dev vastguard reconcile")  # the audit judges the refreshed state
    for name in ("deploy.yml", "nightly.yml"):
        assert "./dev vastguard ci set-key" in runs[name]
    on = {name: yaml.safe_load((WORKFLOWS / name).read_text())[True] for name in runs}  # YAML 1.1: on -> True
    assert "pull_request_target" in on["preview.yml"]
    assert on["deploy.yml"]["push"]["branches"] == ["main"]
    assert "schedule" in on["nightly.yml"]


def test_the_guard_runs_every_fifteen_minutes_after_the_prepaid_allocation() -> None:
    doc = yaml.safe_load((WORKFLOWS / "guard.yml").read_text())
    assert doc[True]["schedule"] == [{"cron": "*/15 * * * *"}]
    run = "\n".join(str(s.get("run", "")) for s in _steps(WORKFLOWS / "guard.yml"))
    assert run.index("./dev vastguard budget allocate") < run.index("./dev vastguard guard")
    assert 'export "$KEY_NAME=$TEAM_KEY"' in run  # a shell builtin: the key is in no process's argv
