"""Onboarding: `vastguard team add` (vastguard.teams) writes a valid stack and a valid team file, never over one."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.declaration import parse_fleet
from fleet.gpus import normalize
from policies.rules import RULES
from policies.teamfile import load_team_file
from tests.policies.fakes import block, collect, quote, resource_args, stack_args
from vastguard.teams import TeamError, TeamExistsError, add_team, register


def fleet_of(stack_file: Path) -> Any:
    config = yaml.safe_load(stack_file.read_text())["config"]
    return parse_fleet(stack_file.stem.removeprefix("Pulumi."), config["vastguard:team"], config["vastguard:fleet"])


def test_add_team_writes_a_minimal_stack_and_the_template_limits(tmp_path: Path) -> None:
    added = add_team("vision", root=tmp_path)
    assert added.stack_file == tmp_path / "stacks" / "Pulumi.vision.yaml"
    assert added.team_file == tmp_path / "policies" / "teams" / "vision.json"
    text = added.stack_file.read_text()
    assert "pulumi config set --secret vastai:apiKey --stack vision" in text
    assert "--policy-pack-config policies/teams/vision.json" in text
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
            found += collect(rule.stack, stack_args(instances, config, stack="vision"))
    assert found == []


def test_an_existing_team_is_never_overwritten(tmp_path: Path) -> None:
    stack = tmp_path / "stacks" / "Pulumi.vision.yaml"
    stack.parent.mkdir(parents=True)
    stack.write_text("config: {}\n")
    with pytest.raises(TeamExistsError, match=r"team 'vision' already exists: .*Pulumi.vision.yaml"):
        add_team("vision", root=tmp_path)
    assert stack.read_text() == "config: {}\n"
    assert not (tmp_path / "policies" / "teams" / "vision.json").exists()
    add_team("optics", root=tmp_path)
    (tmp_path / "stacks" / "Pulumi.optics.yaml").unlink()
    with pytest.raises(TeamExistsError, match=r"optics\.json"):
        add_team("optics", root=tmp_path)


@pytest.mark.parametrize("name", ["ML", "a", "-ml", "ml_research", "1team", "ml research", "x" * 41, ""])
def test_bad_team_names_are_refused_with_the_rule(tmp_path: Path, name: str) -> None:
    with pytest.raises(TeamError, match="lower-case letters, digits and dashes"):
        add_team(name, root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_invalid_limits_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(TeamError, match=r"vast-daily-budget\.daily_budget: Input should be greater than or equal"):
        add_team("vision", root=tmp_path, daily_budget=-5)
    assert not any(tmp_path.iterdir())


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
    assert "policies/teams/vision.json" in out and "pulumi config set --secret vastai:apiKey" in out
    assert load_team_file(tmp_path / "policies" / "teams" / "vision.json").max_instances.max_instances == 3

    again = parser().parse_args(["team", "add", "vision", "--root", str(tmp_path)])
    assert again.func(again) == 1
    assert re.search(r"error: team 'vision' already exists", capsys.readouterr().err)

    check = parser().parse_args(["team", "check", "--root", str(tmp_path)])
    assert check.func(check) == 0
    assert "vision.json: ok (team vision, stacks vision)" in capsys.readouterr().out
