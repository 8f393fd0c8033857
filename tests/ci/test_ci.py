"""vastguard/ci.py: which stacks a change touches, the CI secret names, set-key (verdicts: test_verdict.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from engine import repo_root
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
    (["stacks/Pulumi.platform.yaml", "policies/platform.json"], []),  # the platform stack is no team
])
def test_changed_teams(paths: list[str], expected: list[str]) -> None:
    assert ci.changed_teams(paths, TEAMS) == expected


def test_known_teams_are_the_repositorys_stacks() -> None:
    assert ci.known_teams(repo_root()) == TEAMS


def test_secret_names_match_reconcile_env_names() -> None:
    assert ci.secret_name("ml-research") == "VASTGUARD_KEY_ML_RESEARCH"
    assert ci.matrix(["data-science"]) == {"include": [{
        "team": "data-science", "secret": "VASTGUARD_KEY_DATA_SCIENCE",
        "preview_secret": "VASTGUARD_PREVIEW_SECRET_DATA_SCIENCE",
        "deploy_secret": "VASTGUARD_DEPLOY_SECRET_DATA_SCIENCE",
        "passphrase": "VASTGUARD_PASSPHRASE_DATA_SCIENCE",
        "aws_access_key_id": "VASTGUARD_AWS_ACCESS_KEY_ID_DATA_SCIENCE",
        "aws_secret_access_key": "VASTGUARD_AWS_SECRET_ACCESS_KEY_DATA_SCIENCE"}]}


def test_github_outputs() -> None:
    assert ci.github_outputs([]) == ('matrix={"include": []}\nany=false\nplatform_review=false\n'
                                     'platform_paths=[]\n')
    assert ci.github_outputs(["a"], ["policies/pack.py"]).endswith(
        'any=true\nplatform_review=true\nplatform_paths=["policies/pack.py"]\n')


@pytest.mark.parametrize(("paths", "expected"), [
    (["stacks/Pulumi.ml-research.yaml", "README.md", "tests/ci/test_ci.py"], []),
    (["policies/teams/ml-research.json"], ["policies/teams/ml-research.json"]),  # a team's limits: platform-owned
    (["stacks/Pulumi.platform.yaml", "policies/platform.json"], ["stacks/Pulumi.platform.yaml",
                                                                 "policies/platform.json"]),
    (["vastguard/ci.py", ".github/workflows/preview.yml", ".github/CODEOWNERS", "program/x.py", "providers/y.py",
      "fleet/z.py", "vastclient/a.py", "engine/b.py", "requirements.lock", "pyproject.toml", "__main__.py",
      "Pulumi.yaml", "dev"], ["vastguard/ci.py", ".github/workflows/preview.yml", ".github/CODEOWNERS",
                              "program/x.py", "providers/y.py", "fleet/z.py", "vastclient/a.py", "engine/b.py",
                              "requirements.lock", "pyproject.toml", "__main__.py", "Pulumi.yaml", "dev"]),
])
def test_platform_owned_paths_get_the_platform_review(paths: list[str], expected: list[str]) -> None:
    assert ci.platform_paths(paths) == expected


def test_the_platform_review_summary_names_the_base_and_each_path() -> None:
    md = ci.platform_review_markdown(["policies/pack.py"], base="abc123")
    assert "ran the base's rules, program and tooling (commit abc123)" in md and "- `policies/pack.py`" in md


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], cwd=repo,
                          capture_output=True, text=True, check=True).stdout.strip()


def seed_repo(root: Path, *, git: bool = True) -> str:
    """The seed teams' stack files in `root`, committed (the base commit's sha) unless `git` is False."""
    (root / "stacks").mkdir(parents=True)
    for team in TEAMS:
        (root / "stacks" / f"Pulumi.{team}.yaml").write_text("config: {}\n")
    if not git:
        return ""
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "base")
    return _git(root, "rev-parse", "HEAD")


def test_select_teams_from_a_git_diff(tmp_path: Path) -> None:
    base = seed_repo(tmp_path)
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
    assert out.read_text().splitlines()[-3] == "any=true"


def test_set_key_without_the_secret_says_which_secret_to_add(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: vastguard\nruntime: python\nstackConfigDir: stacks\n")
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.ml-research.yaml").write_text("config:\n  vastguard:team: ml-research\n")
    monkeypatch.delenv(ci.KEY_ENV, raising=False)
    assert main(["ci", "set-key", "--stack", "ml-research", "--project-dir", str(tmp_path)]) == 1
    assert "VASTGUARD_KEY_ML_RESEARCH" in capsys.readouterr().err


def test_set_key_has_nothing_to_set_for_a_stack_taking_keys_from_the_platform(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(ci.KEY_ENV, raising=False)
    assert main(["ci", "set-key", "--stack", "ml-research"]) == 0  # the seed stacks take keys from the platform
    err = capsys.readouterr().err
    assert "nothing to set" in err and "VASTGUARD_PREVIEW_SECRET_ML_RESEARCH" in err


def test_changed_reads_the_teams_from_the_trusted_tree_and_the_diff_from_the_prs_checkout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    trusted, pr = tmp_path / "base", tmp_path / "pr"
    seed_repo(trusted, git=False)
    base = seed_repo(pr)
    (pr / "stacks" / "Pulumi.ml-research.yaml").write_text("config: {a: 1}\n")
    (pr / "stacks" / "Pulumi.intruder.yaml").write_text("config: {}\n")  # a stack the base does not have
    (pr / "policies").mkdir()
    (pr / "policies" / "instances.py").write_text("# loosened\n")
    _git(pr, "add", ".")
    _git(pr, "commit", "-q", "-m", "pr")
    out = tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    assert main(["ci", "changed", "--base", base, "--head", "HEAD", "--root", str(trusted), "--repo", str(pr),
                 "--format", "lines"]) == 0
    assert capsys.readouterr().out.split() == TEAMS  # policies/ changed: every team, the base's teams only
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert outputs["platform_review"] == "true"
    assert json.loads(outputs["platform_paths"]) == ["policies/instances.py"]
    assert [e["team"] for e in json.loads(outputs["matrix"])["include"]] == TEAMS
