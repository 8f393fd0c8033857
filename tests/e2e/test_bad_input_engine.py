"""A handful of the generated bad inputs (tests/program/test_bad_input.py, tests/policies/test_bad_config.py)
through the real engine: `pulumi preview` fails, its output names the field (and the group or the policy), and
the emulator's request log holds no call that rents, changes or releases an instance.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from policies.teamfile import check_files
from tests.e2e.conftest import TeamEnv
from vastguard.workspace import POLICY_PACK, team_policy_config

pytestmark = pytest.mark.engine

TEAM = "data-science"
NOTEBOOK: dict[str, Any] = {"gpu": "RTX_3090", "count": 1, "image": "jupyter/pytorch-notebook:latest",
                            "disk_gb": 32, "max_dph": 0.30}
MUTATING = ("create", "manage", "destroy")


def mutating_calls(env: TeamEnv) -> list[str]:
    return [f"{r.method} {r.path} -> {r.status}" for r in env.emulator.market.requests.records()
            if r.operation in MUTATING]


def failed_preview(env: TeamEnv, *, policy_config: Path | None = None) -> str:
    if policy_config is None:
        result = env.ws.preview(TEAM)
    else:
        result = env.ws.cli.run("preview", "--policy-pack", str(POLICY_PACK), "--policy-pack-config",
                                str(policy_config), stack=TEAM, check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0, text[-3000:]
    assert env.api_key not in text
    return text


@pytest.mark.parametrize(
    ("group", "needles"),
    [
        # a typo, a negative count and a malformed image in one group: every problem listed, by field
        pytest.param({**NOTEBOOK, "cuont": 2, "count": -1, "image": "Jupyter/PyTorch-Notebook:latest"},
                     ["group 'notebook', field 'cuont': unknown field; valid fields: gpu, count,",
                      "group 'notebook', field 'count': Input should be greater than or equal to 0 (got -1)",
                      "group 'notebook', field 'image': not a container image reference"], id="typo-count-image"),
        # YAML slips of type: a boolean count, a price in words, a country that is not a code
        pytest.param({**NOTEBOOK, "count": True, "max_dph": "cheap", "geolocation": "USA"},
                     ["group 'notebook', field 'count': must be a number, not true (got True)",
                      "group 'notebook', field 'max_dph': Input should be a valid number",
                      "group 'notebook', field 'geolocation': country codes separated by commas"], id="types"),
    ],
)
def test_an_invalid_declaration_fails_preview_naming_group_and_field(
        team_env: Callable[[str], TeamEnv], group: dict[str, Any], needles: list[str]) -> None:
    env = team_env(TEAM)
    env.ws.set_fleet(TEAM, {"notebook": group})
    text = failed_preview(env)
    assert f"stack '{TEAM}': invalid fleet declaration in stacks/Pulumi.{TEAM}.yaml:" in text
    for needle in needles:
        assert needle in text
    assert mutating_calls(env) == []


def test_an_unknown_gpu_fails_preview_at_check_naming_the_instance_and_field(
        team_env: Callable[[str], TeamEnv]) -> None:
    """Valid to the program (only Vast knows its GPU names), so the engine checks the instances and stops at
    the first that `check` refuses; the valid group is never blamed, nothing is rented."""
    env = team_env(TEAM)
    env.ws.set_fleet(TEAM, {"notebook": NOTEBOOK, "eval": {**NOTEBOOK, "gpu": "RTX_3O90", "count": 2}})
    text = failed_preview(env)
    assert any(f"vastai:Instance resource '{name}': property gpu_name value {{RTX_3O90}} has a problem: "
               "unknown GPU name 'RTX_3O90'" in text for name in ("eval-0", "eval-1")), text[-3000:]
    assert f"fix the group's `gpu` in stacks/Pulumi.{TEAM}.yaml" in text
    assert "resource 'notebook-0': property" not in text
    assert mutating_calls(env) == []


def test_an_invalid_team_file_fails_preview_naming_policy_and_field_as_team_check_does(
        team_env: Callable[[str], TeamEnv], tmp_path: Path) -> None:
    env = team_env(TEAM)
    config = json.loads(team_policy_config(TEAM).read_text())
    broken = copy.deepcopy(config)
    broken["vast-max-instances"]["max_instances"] = True
    broken["vast-gpu-allow-list"]["allowed_gpus"] = ["RTX_4090", ""]
    path = tmp_path / f"{TEAM}.json"
    path.write_text(json.dumps(broken, indent=2))

    text = failed_preview(env, policy_config=path)
    assert "validating policy config: vastguard 0.1.0" in text
    assert "vast-max-instances: max_instances: Invalid type. Expected: integer, given: boolean" in text
    assert "vast-gpu-allow-list: allowed_gpus.1: Does not match pattern" in text
    assert mutating_calls(env) == []
    assert env.emulator.market.requests.records() == []  # refused before the program ran: no call at all

    # `vastguard team check` refuses the same file for the same fields.
    out = io.StringIO()
    assert check_files([path], out=out) == 1
    assert "vast-max-instances.max_instances: must be a JSON number, not true" in out.getvalue()
    assert "vast-gpu-allow-list.allowed_gpus.1: must not be empty or blank" in out.getvalue()
