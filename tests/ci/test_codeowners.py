"""`.github/CODEOWNERS` (vastguard/codeowners.py): `team add/remove` keep it, `team check` verifies it against the
team stacks; the platform team owns everything but each team's own stack file."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from engine import repo_root
from vastguard import codeowners
from vastguard.ci import known_teams
from vastguard.cli import main
from vastguard.teams import TeamError, add_team, remove_team

SEED = ["data-science", "ml-engineering", "ml-research"]


def owner_of(text: str, path: str) -> str | None:
    """The owner GitHub gives `path`: the last matching line (only the patterns this file uses)."""
    found = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pattern, handle = line.split()[:2]
        if pattern == "*" or ("/" + path).startswith(pattern) or "/" + path == pattern:
            found = handle
    return found


def test_the_committed_codeowners_matches_the_stacks() -> None:
    assert codeowners.check(repo_root(), known_teams(repo_root())) == []
    text = codeowners.codeowners_file(repo_root()).read_text()
    for team in SEED:
        assert owner_of(text, f"stacks/Pulumi.{team}.yaml") == f"@vastguard/{team}"
        assert owner_of(text, f"policies/teams/{team}.json") == "@vastguard/platform"  # its limits are not its own
    for path in ("policies/pack.py", "stacks/Pulumi.platform.yaml", "program/fleet_program.py",
                 "providers/vast_instance.py", ".github/workflows/preview.yml", ".github/CODEOWNERS",
                 "vastguard/ci.py", "requirements.lock", "README.md"):
        assert owner_of(text, path) == "@vastguard/platform", path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "stacks").mkdir()
    shutil.copyfile(repo_root() / "stacks" / "Pulumi.platform.yaml", tmp_path / "stacks" / "Pulumi.platform.yaml")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "CODEOWNERS").write_text(
        codeowners.render(codeowners.Owners(platform="@acme/infra")))
    return tmp_path


def test_add_and_remove_keep_it_right(root: Path) -> None:
    add_team("vision", root=root, today=date(2026, 12, 2))
    add_team("optics", root=root, own_key=True, owner="@acme/eyes")
    text = codeowners.codeowners_file(root).read_text()
    assert owner_of(text, "stacks/Pulumi.vision.yaml") == "@acme/vision"  # the platform's org by default
    assert owner_of(text, "stacks/Pulumi.optics.yaml") == "@acme/eyes"
    assert owner_of(text, "policies/teams/vision.json") == "@acme/infra"
    assert codeowners.check(root, known_teams(root)) == []
    remove_team("vision", root=root, destroy=lambda _name: None, stack_exists=lambda _name: False)
    assert codeowners.parse(codeowners.codeowners_file(root).read_text()).teams == {"optics": "@acme/eyes"}
    assert codeowners.check(root, known_teams(root)) == []


def test_a_bad_handle_is_refused_before_anything_is_written(root: Path) -> None:
    before = codeowners.codeowners_file(root).read_text()
    with pytest.raises(TeamError, match=r"--owner: 'vision team' is not a GitHub handle: use @org/team or @user"):
        add_team("vision", root=root, owner="vision team")
    assert not (root / "stacks" / "Pulumi.vision.yaml").exists()
    assert codeowners.codeowners_file(root).read_text() == before


def test_check_finds_what_is_wrong(root: Path) -> None:
    add_team("vision", root=root, today=date(2026, 12, 2))
    path = codeowners.codeowners_file(root)
    good = path.read_text()
    (root / "stacks" / "Pulumi.optics.yaml").write_text("config:\n  vastguard:team: optics\n")  # by hand
    assert codeowners.check(root, known_teams(root)) == [
        f"{path}: team optics has a stack file but no owner line (/stacks/Pulumi.optics.yaml @org/optics)"]
    (root / "stacks" / "Pulumi.optics.yaml").unlink()
    (root / "stacks" / "Pulumi.vision.yaml").unlink()
    assert codeowners.check(root, known_teams(root)) == [
        f"{path}: /stacks/Pulumi.vision.yaml is owned but there is no such team stack; remove the line"]
    add_team_stack = good.replace("/policies/                          @acme/infra\n", "")
    (root / "stacks" / "Pulumi.vision.yaml").write_text("config:\n  vastguard:team: vision\n")
    path.write_text(add_team_stack + "/policies/teams/  @acme/vision\n")  # hands the team its own limits
    assert "differs from what vastguard writes" in codeowners.check(root, known_teams(root))[0]
    path.unlink()
    assert "is missing" in codeowners.check(root, known_teams(root))[0]


def test_team_check_fails_on_a_wrong_codeowners_and_team_codeowners_rewrites_it(
        root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_team("vision", root=root, today=date(2026, 12, 2))
    shutil.copyfile(repo_root() / "policies" / "platform.json", root / "policies" / "platform.json")
    assert main(["team", "check", "--root", str(root)]) == 0
    assert "CODEOWNERS: ok (every team stack owned by its team)" in capsys.readouterr().out
    codeowners.set_team(root, "vision", remove=True)
    assert main(["team", "check", "--root", str(root)]) == 1
    assert "team vision has a stack file but no owner line" in capsys.readouterr().out
    assert main(["team", "codeowners", "--root", str(root)]) == 0
    assert main(["team", "check", "--root", str(root)]) == 0
    assert owner_of(codeowners.codeowners_file(root).read_text(), "stacks/Pulumi.vision.yaml") == "@acme/vision"
