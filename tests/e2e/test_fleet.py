"""A team's fleet through the real engine against the emulator: issue 4's lifecycle, end to end."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import TeamEnv

pytestmark = pytest.mark.engine

ONE_NOTEBOOK: dict[str, Any] = {
    "notebook": {"gpu": "RTX_3090", "count": 2, "image": "jupyter/pytorch-notebook:latest", "disk_gb": 32,
                 "max_dph": 0.30},
}


def tags(env: TeamEnv) -> dict[str, str]:
    return {i.label or "": i.actual_status for i in env.live()}


def test_fleet_lifecycle(team_env: Callable[[str], TeamEnv]) -> None:
    env = team_env("data-science")
    env.ws.set_fleet("data-science", ONE_NOTEBOOK)

    env.ws.up("data-science", policy=False)
    live = env.live()
    labels = sorted(i.label or "" for i in live)
    assert len(labels) == 2
    assert labels[0].startswith("data-science/notebook-0 [vg:data-science/notebook-0#")
    assert labels[1].startswith("data-science/notebook-1 [vg:data-science/notebook-1#")
    assert {i.actual_status for i in live} == {"running"}
    outputs = env.ws.outputs("data-science")
    assert outputs["estimated_cost"]["hourly"] > 0
    first_ids = {i.id for i in live}

    # A second up changes nothing.
    again = env.ws.cli.run("preview", "--expect-no-changes", stack="data-science")
    assert again.returncode == 0

    # Stopping is in place: same instances, now stopped.
    fleet = {"notebook": {**ONE_NOTEBOOK["notebook"], "state": "stopped"}}
    env.ws.set_fleet("data-science", fleet)
    env.ws.up("data-science", policy=False)
    assert {i.id for i in env.live()} == first_ids
    assert {i.actual_status for i in env.live()} == {"stopped"}
    assert {i.intended_status for i in env.live()} == {"stopped"}

    # ... and so is starting again.
    env.ws.set_fleet("data-science", ONE_NOTEBOOK)
    env.ws.up("data-science", policy=False)
    assert {i.id for i in env.live()} == first_ids
    assert {i.actual_status for i in env.live()} == {"running"}

    # Changing the GPU replaces: new instances, the old ones released.
    fleet = {"notebook": {**ONE_NOTEBOOK["notebook"], "gpu": "RTX_4090", "max_dph": 0.9}}
    env.ws.set_fleet("data-science", fleet)
    env.ws.up("data-science", policy=False)
    replaced = env.live()
    assert len(replaced) == 2
    assert not ({i.id for i in replaced} & first_ids)
    assert {i.offer.gpu_name for i in replaced} == {"RTX 4090"}

    # Destroyed behind Pulumi's back: refresh drops it, up brings it back.
    victim = replaced[0]
    env.emulator.market.destroy_instance(env.account, victim.id)
    env.ws.refresh("data-science")
    state_ids = {r["id"] for r in _instances_in_state(env)}
    assert str(victim.id) not in state_ids
    env.ws.up("data-science", policy=False)
    assert len(env.live()) == 2
    assert victim.id not in {i.id for i in env.live()}

    env.ws.destroy("data-science")
    assert env.live() == []
    assert_key_nowhere(env)


def assert_key_nowhere(env: TeamEnv) -> None:
    """The team's key: not in the state file, history, checkpoints or backups, plaintext or gzipped."""
    state_dir = Path(env.ws.cli.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    files = [p for p in state_dir.rglob("*") if p.is_file()]
    assert any("history" in p.name for p in files)
    assert any("checkpoint" in p.name for p in files)
    for path in files:
        raw = path.read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        assert env.api_key.encode() not in text, path
    # And the stack config holds it only encrypted.
    assert env.api_key not in env.ws.stack_file(env.team).read_text()


def _instances_in_state(env: TeamEnv) -> list[dict[str, Any]]:
    export = json.loads(env.ws.cli.run("stack", "export", stack=env.team).stdout)
    return [r for r in export["deployment"].get("resources", []) if r["type"].endswith("vastai:Instance")]
