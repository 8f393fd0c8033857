"""Onboarding and retiring: `vastguard team add` (vastguard.teams) declares the team in the platform stack and
writes a valid stack and a valid team file, never over one; `team remove` destroys the team's stack first."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import repo_root
from fleet.declaration import parse_fleet
from fleet.gpus import normalize
from fleet.platform_declaration import PLATFORM_CONFIG, parse_platform
from policies.rules import RULES
from policies.teamfile import load_team_file
from tests.policies.fakes import block, collect, quote, resource_args, spend, stack_args
from vastguard.teams import RemovedTeam, TeamError, TeamExistsError, add_team, register, remove_team

TODAY = date(2026, 12, 2)


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    """A project root holding the seed platform stack (every test here adds to it)."""
    (tmp_path / "stacks").mkdir()
    shutil.copyfile(repo_root() / "stacks" / "Pulumi.platform.yaml", tmp_path / "stacks" / "Pulumi.platform.yaml")
    return tmp_path


def fleet_of(stack_file: Path) -> Any:
    config = yaml.safe_load(stack_file.read_text())["config"]
    return parse_fleet(stack_file.stem.removeprefix("Pulumi."), config["vastguard:team"], config["vastguard:fleet"])


def platform_teams(root: Path) -> dict[str, Any]:
    config = yaml.safe_load((root / "stacks" / "Pulumi.platform.yaml").read_text())["config"]
    return {name: team for name, team in parse_platform("platform", config[PLATFORM_CONFIG]).teams.items()}


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_add_team_declares_it_in_the_platform_and_writes_a_stack_taking_its_keys(tmp_path: Path) -> None:
    header = (tmp_path / "stacks" / "Pulumi.platform.yaml").read_text().split("config:")[0]
    added = add_team("vision", root=tmp_path, today=TODAY)
    assert added.platform_file == tmp_path / "stacks" / "Pulumi.platform.yaml"
    vision = platform_teams(tmp_path)["vision"]
    assert {kind: (spec.rotation, sorted(spec.permissions.grants)) for kind, spec in vision.keys.items()} == {
        "preview": ("2026-12-02", ["billing_read", "instance_read", "misc", "user_read"]),
        "deploy": ("2026-12-02", ["billing_read", "instance_read", "instance_write", "misc", "user_read"])}
    assert set(platform_teams(tmp_path)) == {"data-science", "ml-engineering", "ml-research", "vision"}
    assert added.platform_file.read_text().startswith(header)  # the reviewed header is kept
    config = yaml.safe_load(added.stack_file.read_text())["config"]
    assert config["vastguard:keyFrom"] == "platform" and "vastai:apiKey" not in config
    text = added.stack_file.read_text()
    assert "VASTGUARD_PREVIEW_SECRET_VISION" in text and "VASTGUARD_DEPLOY_SECRET_VISION" in text
    assert fleet_of(added.stack_file).instances() == {}


def test_add_team_writes_a_minimal_stack_and_the_template_limits(tmp_path: Path) -> None:
    before = (tmp_path / "stacks" / "Pulumi.platform.yaml").read_text()
    added = add_team("vision", root=tmp_path, own_key=True)
    assert added.platform_file is None and (tmp_path / "stacks" / "Pulumi.platform.yaml").read_text() == before
    assert added.stack_file == tmp_path / "stacks" / "Pulumi.vision.yaml"
    assert added.team_file == tmp_path / "policies" / "teams" / "vision.json"
    text = added.stack_file.read_text()
    assert "pulumi config set --secret vastai:apiKey --stack vision" in text
    assert "--policy-pack-config policies/teams/vision.json" in text
    assert "vastguard:keyFrom" not in text
    fleet = fleet_of(added.stack_file)
    assert fleet.team == "vision" and list(fleet.groups) == ["dev"] and fleet.instances() == {}
    team = load_team_file(added.team_file)
    assert (team.team, team.stacks) == ("vision", ["vision"])
    assert {block.team for block in team.blocks().values()} == {"vision"}
    assert team.gpu_allow_list.allowed_gpus == ["RTX_4090"]
    assert (team.max_instances.max_instances, team.daily_budget.daily_budget) == (2, 10)


def test_limits_can_be_set_at_onboarding(tmp_path: Path) -> None:
    added = add_team("vision", root=tmp_path, gpus=["RTX_4090", "A100"], max_instances=4, daily_budget=40,
                     max_dph=1.5)
    team = load_team_file(added.team_file)
    assert team.gpu_allow_list.allowed_gpus == ["RTX_4090", "A100"]
    assert team.max_instances.max_instances == 4
    assert team.max_gpus.max_gpus == 4  # raised with the instance cap so the two caps agree
    assert team.daily_budget.daily_budget == team.daily_budget_warning.daily_budget == 40
    assert team.instance_max_dph.max_dph == 1.5
    assert fleet_of(added.stack_file).groups["dev"].max_dph == 1.5


def test_the_starter_group_once_counted_passes_the_teams_own_rules(tmp_path: Path) -> None:
    """One starter instance fits every limit even if it is quoted at its max_dph ($0.40 x 24 < $10)."""
    added = add_team("vision", root=tmp_path)
    added.stack_file.write_text(added.stack_file.read_text().replace("count: 0 ", "count: 1 "))
    instances = {
        name: {**spec.model_dump(mode="json"), "quote": quote(normalize(spec.gpu_name), dph_total=spec.max_dph)}
        for name, spec in fleet_of(added.stack_file).instances().items()
    }
    assert len(instances) == 1
    team_json = json.loads(added.team_file.read_text())
    found = []
    for rule in RULES:
        config = {**block(None, rule.name), **team_json[rule.name.value]}
        if rule.level.value != "mandatory":
            continue
        if rule.resource is not None:
            for name, props in instances.items():
                found += collect(rule.resource, resource_args(props, config, name=name, stack="vision"))
        elif rule.stack is not None:
            found += collect(rule.stack, stack_args(instances, config, stack="vision", reading=spend("vision")))
    assert found == []


def test_an_existing_team_is_never_overwritten(tmp_path: Path) -> None:
    stack = tmp_path / "stacks" / "Pulumi.vision.yaml"
    stack.write_text("config: {}\n")
    with pytest.raises(TeamExistsError, match=r"team 'vision' already exists: .*Pulumi.vision.yaml"):
        add_team("vision", root=tmp_path)
    assert stack.read_text() == "config: {}\n"
    assert not (tmp_path / "policies" / "teams" / "vision.json").exists()
    add_team("optics", root=tmp_path)
    (tmp_path / "stacks" / "Pulumi.optics.yaml").unlink()
    with pytest.raises(TeamExistsError, match=r"optics\.json"):
        add_team("optics", root=tmp_path)
    # A team already in the platform declaration (its files gone): refused, and nothing is written.
    (tmp_path / "policies" / "teams" / "optics.json").unlink()
    files = tree(tmp_path)
    with pytest.raises(TeamError, match=r"team 'optics' is already declared in .*Pulumi\.platform\.yaml"):
        add_team("optics", root=tmp_path)
    assert tree(tmp_path) == files
    with pytest.raises(TeamError, match="the platform stack's name"):
        add_team("platform", root=tmp_path)


@pytest.mark.parametrize("name", ["ML", "a", "-ml", "ml_research", "1team", "ml research", "x" * 41, ""])
def test_bad_team_names_are_refused_with_the_rule(tmp_path: Path, name: str) -> None:
    files = tree(tmp_path)
    with pytest.raises(TeamError, match="lower-case letters, digits and dashes"):
        add_team(name, root=tmp_path)
    assert tree(tmp_path) == files


def test_invalid_limits_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    files = tree(tmp_path)
    with pytest.raises(TeamError, match=r"vast-daily-budget\.daily_budget: Input should be greater than or equal"):
        add_team("vision", root=tmp_path, daily_budget=-5)
    assert tree(tmp_path) == files


def test_without_a_platform_stack_a_team_is_added_only_with_its_own_key(tmp_path: Path) -> None:
    (tmp_path / "stacks" / "Pulumi.platform.yaml").unlink()
    with pytest.raises(TeamError, match=r"no platform stack file .*: create it .*--own-key"):
        add_team("vision", root=tmp_path)
    assert tree(tmp_path) == {}
    assert add_team("vision", root=tmp_path, own_key=True).platform_file is None


def test_remove_team_destroys_its_stack_first_then_removes_it_from_the_platform(tmp_path: Path) -> None:
    add_team("vision", root=tmp_path, today=TODAY)
    calls: list[str] = []

    def destroy(name: str) -> None:
        assert "vision" in platform_teams(tmp_path), "the platform entry must outlive the destroy (its deploy key)"
        calls.append(name)

    removed = remove_team("vision", root=tmp_path, destroy=destroy, stack_exists=lambda name: name == "vision")
    assert calls == ["vision"]
    assert removed == RemovedTeam(name="vision", destroyed=True, removed=[
        tmp_path / "stacks" / "Pulumi.platform.yaml", tmp_path / "stacks" / "Pulumi.vision.yaml",
        tmp_path / "policies" / "teams" / "vision.json", tmp_path / ".github" / "CODEOWNERS"])
    assert set(platform_teams(tmp_path)) == {"data-science", "ml-engineering", "ml-research"}
    assert not (tmp_path / "stacks" / "Pulumi.vision.yaml").exists()


def test_a_failed_destroy_removes_nothing(tmp_path: Path) -> None:
    add_team("vision", root=tmp_path, today=TODAY)
    files = tree(tmp_path)

    def destroy(name: str) -> None:
        raise TeamError("pulumi destroy failed")

    with pytest.raises(TeamError, match="destroy failed"):
        remove_team("vision", root=tmp_path, destroy=destroy, stack_exists=lambda _name: True)
    assert tree(tmp_path) == files
    with pytest.raises(TeamError, match="no team 'nobody'"):
        remove_team("nobody", root=tmp_path, destroy=destroy, stack_exists=lambda _name: False)
    with pytest.raises(TeamError, match="is the platform stack"):
        remove_team("platform", root=tmp_path, destroy=destroy, stack_exists=lambda _name: True)


def test_the_roots_own_template_is_used_when_present(tmp_path: Path) -> None:
    add_team("first", root=tmp_path, daily_budget=25)
    template = tmp_path / "policies" / "teams" / "_template.json"
    template.write_text((tmp_path / "policies" / "teams" / "first.json").read_text())
    team = load_team_file(add_team("second", root=tmp_path).team_file)
    assert team.daily_budget.daily_budget == 25


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vastguard")
    register(top.add_subparsers(dest="command", required=True))
    return top


def test_cli_team_add_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["team", "add", "vision", "--root", str(tmp_path), "--gpus", "RTX_4090", "A100",
                                "--max-instances", "3", "--daily-budget", "30", "--max-dph", "1.2"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "policies/teams/vision.json" in out and "Pulumi.platform.yaml" in out
    assert "pulumi config set --secret --path 'vastguard:teamKeys.vision' --stack platform" in out
    assert "VASTGUARD_DEPLOY_SECRET_VISION" in out
    assert load_team_file(tmp_path / "policies" / "teams" / "vision.json").max_instances.max_instances == 3

    again = parser().parse_args(["team", "add", "vision", "--root", str(tmp_path)])
    assert again.func(again) == 1
    assert re.search(r"error: team 'vision' already exists", capsys.readouterr().err)

    own = parser().parse_args(["team", "add", "optics", "--own-key", "--root", str(tmp_path)])
    assert own.func(own) == 0
    assert "pulumi config set --secret vastai:apiKey" in capsys.readouterr().out

    (tmp_path / "policies" / "platform.json").write_text((repo_root() / "policies" / "platform.json").read_text())
    check = parser().parse_args(["team", "check", "--root", str(tmp_path)])
    assert check.func(check) == 0
    out = capsys.readouterr().out
    assert "vision.json: ok (team vision, stacks vision)" in out
    assert "platform.json: ok (platform stack platform)" in out
