"""The reports over history the real engine and the real provider wrote, against the emulator (engine test).

The emulator's clock follows real time here (wall == Vast, as with the real Vast.ai): creations and stops are
dated by the provider's Vast-clock outputs, deletes by the checkpoint write shifted by the latest clock sample
(`--vast-clock running`), each within a second or two of the Vast-side event. Reconstructed spend must match
the emulator's charges within a cent, and an instance rented with the team's key outside the stack must come
out as shadow spend. The virtual-clock month through the engine is tests/e2e/test_scripted_month.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reports.charges import env_name
from reports.cli import EXIT_DIFFERENCES, main
from tests.e2e.conftest import TeamEnv, engine, fleet_emulator, pulumi_home, team_env  # noqa: F401 (fixtures)
from vastclient import OfferQuery, VastClient
from vastguard.cli import pulumi_runner

pytestmark = pytest.mark.engine

TEAM = "ml-research"
FLEET: dict[str, Any] = {
    "train": {"gpu": "RTX_3090", "count": 1, "image": "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime",
              "disk_gb": 32, "max_dph": 0.40},
    "eval": {"gpu": "RTX_4090", "count": 1, "image": "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime",
             "disk_gb": 32, "max_dph": 0.90},
}


def report(argv: list[str], out: Path) -> tuple[int, Any]:
    # The Pulumi CLI (for --keys-from-pulumi) is what `vastguard` hands the report commands.
    code = main([*argv, "--no-progress", "--format", "json", "--output", str(out)], pulumi=pulumi_runner)
    return code, json.loads(out.read_text()) if out.exists() else None


def test_reports_over_real_engine_history(team_env: Callable[[str], TeamEnv], tmp_path: Path,  # noqa: F811
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    env = team_env(TEAM)
    began = datetime.fromtimestamp(env.emulator.market.clock.now(), UTC)
    env.ws.set_fleet(TEAM, FLEET)
    env.ws.up(TEAM, policy=False, message="train and eval boxes")
    env.ws.set_fleet(TEAM, {**FLEET, "eval": {**FLEET["eval"], "state": "stopped"}})
    env.ws.up(TEAM, policy=False, message="park eval")
    env.ws.refresh(TEAM)
    env.ws.set_fleet(TEAM, {"train": FLEET["train"]})
    env.ws.up(TEAM, policy=False, message="drop eval")

    backend = env.ws.cli.env["PULUMI_BACKEND_URL"]
    code, audit = report(["audit", "--backend", backend, "--team", TEAM], tmp_path / "audit.json")
    assert code == 0
    events = audit["events"]
    assert [(e["kind"], e["message"]) for e in events] == [
        ("update", "train and eval boxes"), ("update", "park eval"), ("refresh", ""), ("update", "drop eval")]
    assert sorted(c["name"] for c in events[0]["changes"] if c["action"] == "created") == ["eval-0", "train-0"]
    (stopped,) = events[1]["changes"]
    assert stopped["name"] == "eval-0" and "state running -> stopped" in stopped["details"]
    (deleted,) = events[3]["changes"]
    assert (deleted["name"], deleted["action"]) == ("eval-0", "deleted")

    # Rented with the team's key, outside any stack.
    with VastClient(api_key=env.api_key, base_url=env.emulator.url) as vast:
        offer = vast.search_offers(OfferQuery(gpu_names="RTX 3090", disk_gb=16, order=(("dph_total", "asc"),),
                                              limit=1))[0]
        shadow_id = vast.create_instance(offer.id, image="pytorch/pytorch:2.4.0", disk_gb=16, label="quick test")
    env.emulator.market.clock.advance(3600)  # an hour of everyone's spend; the clock still runs with real time

    now = datetime.fromtimestamp(env.emulator.market.clock.now(), UTC)
    # The team's key is a Pulumi secret in its stack config: only the Pulumi CLI can decrypt it.
    monkeypatch.delenv(env_name(TEAM), raising=False)
    monkeypatch.setenv("PULUMI_HOME", env.ws.cli.env["PULUMI_HOME"])
    code, rec = report(["reconcile", "--backend", backend, "--keys-from-pulumi", "--project-dir", str(env.ws.root),
                        "--since", began.strftime("%Y-%m-%d"), "--until", now.strftime("%Y-%m-%d"),
                        "--vast-url", env.emulator.url, "--now", now.isoformat(), "--all"], tmp_path / "reconcile.json")
    assert code == EXIT_DIFFERENCES
    by_status: dict[str, list[dict[str, Any]]] = {}
    for row in rec["rows"]:
        by_status.setdefault(row["status"], []).append(row)
    assert set(by_status) == {"match", "shadow"}, rec["rows"]
    (shadow,) = by_status["shadow"]
    assert shadow["instance_id"] == shadow_id and shadow["label"] == "quick test"
    assert sorted(r["name"] for r in by_status["match"]) == ["eval-0", "train-0"]
    for row in by_status["match"]:
        assert abs(float(row["difference"])) < 0.01, row
