"""vastguard/rules_from.py and the CI command's own PULUMI_HOME: a pull request's preview runs the trusted tree
with only the PR's fleet; whatever else the PR's stack file changes is refused by name. The engine test
(tests/e2e/test_least_privilege.py) runs the preview with a loosened pack in the PR's checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from engine import repo_root
from vastguard import ci
from vastguard.rules_from import RulesError, judged_project, rules_commit

TEAM = "ml-research"


def tree(root: Path) -> Path:
    (root / "stacks").mkdir(parents=True)
    (root / "policies").mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copyfile(repo_root() / name, root / name)
    for stack in (TEAM, "platform", "data-science"):
        shutil.copyfile(repo_root() / "stacks" / f"Pulumi.{stack}.yaml", root / "stacks" / f"Pulumi.{stack}.yaml")
    return root


def edit(root: Path, stack: str, **config: object) -> None:
    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    data = yaml.safe_load(path.read_text())
    data["config"].update(config)
    path.write_text(yaml.safe_dump(data))


def config_of(project: Path, stack: str = TEAM) -> dict[str, object]:
    config: dict[str, object] = yaml.safe_load((project / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    return config


def test_the_prs_fleet_in_the_trusted_project(tmp_path: Path) -> None:
    trusted, pr = tree(tmp_path / "base"), tree(tmp_path / "pr")
    fleet = {"big": {"gpu": "H100_SXM", "count": 9, "image": "x/y:1", "disk_gb": 10, "max_dph": 99}}
    edit(pr, TEAM, **{"vastguard:fleet": fleet})
    (pr / "__main__.py").write_text("raise SystemExit('the PR program ran')\n")  # never copied
    edit(pr, "platform", **{"vastguard:platform": {"teams": {}}})  # nor its platform stack
    project = judged_project(trusted, pr, TEAM, tmp_path / "judged")
    assert config_of(project)["vastguard:fleet"] == fleet
    assert config_of(project)["vastguard:keyFrom"] == "platform"
    assert (project / "__main__.py").read_text() == (trusted / "__main__.py").read_text()
    assert config_of(project, "platform") == config_of(trusted, "platform")
    venv = yaml.safe_load((project / "Pulumi.yaml").read_text())["runtime"]["options"]["virtualenv"]
    assert venv == str((trusted / ".venv").resolve())  # the trusted tree's environment, wherever the copy is


@pytest.mark.parametrize(("change", "named"), [
    ({"vastai:url": "https://attacker.example"}, "vastai:url"),  # would send the preview key elsewhere
    ({"vastguard:team": "data-science"}, "vastguard:team"),  # would be judged by another team's file
    ({"vastguard:keyFrom": "other-platform"}, "vastguard:keyFrom"),
    ({"vastai:apiKey": {"secure": "v1:abc"}}, "vastai:apiKey"),
])
def test_a_pr_changing_more_than_its_fleet_is_refused_by_name(tmp_path: Path, change: dict[str, object],
                                                             named: str) -> None:
    trusted, pr = tree(tmp_path / "base"), tree(tmp_path / "pr")
    edit(pr, TEAM, **change)
    with pytest.raises(RulesError, match=rf"the pull request changes {named} in stacks/Pulumi.{TEAM}.yaml: a pull "
                                         r"request's preview takes only vastguard:fleet from it"):
        judged_project(trusted, pr, TEAM, tmp_path / "judged")


def test_a_secrets_provider_change_is_refused_too(tmp_path: Path) -> None:
    trusted, pr = tree(tmp_path / "base"), tree(tmp_path / "pr")
    path = pr / "stacks" / f"Pulumi.{TEAM}.yaml"
    path.write_text(path.read_text() + "encryptionsalt: v1:AAAA:BBBB\n")
    with pytest.raises(RulesError, match="changes encryptionsalt"):
        judged_project(trusted, pr, TEAM, tmp_path / "judged")


def test_a_stack_the_base_does_not_have_says_so(tmp_path: Path) -> None:
    trusted, pr = tree(tmp_path / "base"), tree(tmp_path / "pr")
    (pr / "stacks" / "Pulumi.vision.yaml").write_text("config:\n  vastguard:team: vision\n")
    with pytest.raises(RulesError, match=r"the base's stack file .*Pulumi.vision.yaml does not exist"):
        judged_project(trusted, pr, "vision", tmp_path / "judged")
    (pr / "stacks" / f"Pulumi.{TEAM}.yaml").write_text("config: [1]\n")
    with pytest.raises(RulesError, match="must be a mapping with a `config:` mapping"):
        judged_project(trusted, pr, TEAM, tmp_path / "judged")


def test_the_rules_commit_is_the_trusted_trees_head(tmp_path: Path) -> None:
    assert rules_commit(tmp_path) is None
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True,
                          check=True).stdout.strip()
    assert rules_commit(repo_root()) == head


def test_each_command_has_its_own_pulumi_home_removed_at_the_end(tmp_path: Path) -> None:
    seen: list[Path] = []

    def command() -> None:
        with ci.job_pulumi_home() as home:
            seen.append(home)
            assert home.is_dir() and home.name.startswith("vastguard-pulumi-home-")
            (home / "logs").mkdir()
            (home / "logs" / "pulumi.log").write_text("decrypted secrets")
            raise RuntimeError("the command failed")

    with pytest.raises(RuntimeError):
        command()
    assert len(seen) == 1 and not seen[0].exists()  # removed on failure too


def test_the_rules_cannot_come_from_the_prs_checkout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vastguard.cli import main

    pr = tree(tmp_path / "pr")
    (pr / "policies" / "teams").mkdir()
    loosened = pr / "policies" / "teams" / f"{TEAM}.json"
    loosened.write_text((repo_root() / "policies" / "teams" / f"{TEAM}.json").read_text())
    assert main(["ci", "preview", "--stack", TEAM, "--pr-checkout", str(pr), "--policy-config", str(loosened)]) == 1
    assert "is inside the pull request's checkout: the rules that judge a pull request come from the trusted " \
           "tree" in capsys.readouterr().err


def test_a_rules_commit_that_is_no_sha_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from vastguard.cli import main

    assert main(["ci", "preview", "--stack", TEAM, "--rules-commit", "main"]) == 1
    assert "--rules-commit 'main' is not a commit sha" in capsys.readouterr().err
