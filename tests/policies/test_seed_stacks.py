"""The committed stacks and team files agree: each seed stack passes its own team's mandatory rules.

Why: stacks/ (owned by each team) and policies/teams/ (owned by the platform team) are edited separately; a
stack that its own policy denies would block every pull request of that team. Judged at the worst case the
stack allows: every instance quoted at its max_dph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.declaration import parse_fleet
from fleet.gpus import normalize
from policies.names import RuleName
from policies.rules import RULES
from tests.policies.fakes import block, collect, quote, resource_args, spend, stack_args

STACKS = Path(__file__).resolve().parents[2] / "stacks"
TEAMS = ["ml-research", "ml-engineering", "data-science"]


def worst_case_instances(team: str) -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((STACKS / f"Pulumi.{team}.yaml").read_text())["config"]
    fleet = parse_fleet(team, config["vastguard:team"], config.get("vastguard:fleet"))
    return {
        name: {**spec.model_dump(mode="json"), "quote": quote(normalize(spec.gpu_name), dph_total=spec.max_dph)}
        for name, spec in fleet.instances().items()
    }


@pytest.mark.parametrize("team", TEAMS)
def test_seed_stack_passes_its_teams_mandatory_rules(team: str) -> None:
    instances = worst_case_instances(team)
    assert instances, f"stacks/Pulumi.{team}.yaml declares no instance"
    found: dict[str, list[str]] = {}
    for rule in RULES:
        if rule.level.value != "mandatory":
            continue
        config = block(team, RuleName(rule.name))
        if rule.resource is not None:
            for name, props in instances.items():
                for v in collect(rule.resource, resource_args(props, config, name=name, stack=team)):
                    found.setdefault(rule.name, []).append(v.message)
        elif rule.stack is not None:
            for v in collect(rule.stack, stack_args(instances, config, stack=team, reading=spend(team))):
                found.setdefault(rule.name, []).append(v.message)
    assert found == {}
