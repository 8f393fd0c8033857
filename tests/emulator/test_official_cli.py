"""The official `vastai` CLI (1.9.1, from the venv) against the emulator, unchanged, as a subprocess
(`tests/emulator/official_cli.py` runs it: key in the environment, throwaway HOME)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from emulator import EmulatorServer
from emulator.testing import Control, http, make_account
from tests.emulator.official_cli import Cli


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with EmulatorServer(port=0, seed=77, provision_delay=0) as server:
        account = make_account(server, balance=25, username="cli-user")
        yield Cli.at(server.url, account.api_key, tmp_path_factory.mktemp("vastai-home"))


def test_search_offers(cli: Cli) -> None:
    raw, table = cli.parallel(
        ("search", "offers", "gpu_name=RTX_4090 num_gpus=1 reliability>0.95", "-o", "dph_total", "--limit", "5",
         "--storage", "16", "--raw"),
        ("search", "offers", "gpu_name=H100_SXM", "--limit", "3"))
    offers = json.loads(raw)
    assert 1 <= len(offers) <= 5
    assert all(o["gpu_name"] == "RTX 4090" and o["num_gpus"] == 1 and o["reliability"] > 0.95 for o in offers)
    assert all(o["verified"] and o["rentable"] and not o["external"] for o in offers)
    prices = [o["dph_total"] for o in offers]
    assert prices == sorted(prices)
    assert offers[0]["dph_total"] == pytest.approx(offers[0]["dph_base"] + offers[0]["storage_cost"] * 16 / 720)
    assert "H100_SXM" in table


def test_instance_lifecycle_user_and_charges(cli: Cli) -> None:
    control = Control(cli.url)
    control.freeze("2026-06-15T08:00:00Z")  # mid-morning: three hours later is still the same day
    [offer] = cli.raw("search", "offers", "gpu_name=RTX_3090", "-o", "dph_total", "--limit", "1")
    created = cli.raw("create", "instance", str(offer["id"]), "--image", "pytorch/pytorch:latest",
                      "--disk", "16", "--label", "cli-team", "--env", "-e TZ=UTC")
    assert created["success"] is True
    instance_id = created["new_contract"]

    listed, one = map(json.loads, cli.parallel(("show", "instances", "--raw"),
                                               ("show", "instance", str(instance_id), "--raw")))
    assert [(r["id"], r["label"], r["actual_status"]) for r in listed] == [(instance_id, "cli-team", "running")]
    assert one["id"] == instance_id and one["extra_env"] == {"TZ": "UTC"}  # the CLI folds the pairs

    assert f"label for {instance_id} set to relabelled." in cli.run(
        "label", "instance", str(instance_id), "relabelled").stdout
    assert f"stopping instance {instance_id}." in cli.run("stop", "instance", str(instance_id)).stdout
    assert _row(cli, instance_id)["actual_status"] == "stopped"
    assert f"starting instance {instance_id}." in cli.run("start", "instance", str(instance_id)).stdout
    assert (_row(cli, instance_id)["actual_status"], _row(cli, instance_id)["label"]) == ("running", "relabelled")

    control.advance(3 * 3600)  # three hours of billing, without waiting for them
    today = datetime.fromtimestamp(control.call("GET", "/clock")["now"], UTC).strftime("%Y-%m-%d")
    assert today == "2026-06-15"
    raw_charges, raw_user, table, single, tree = cli.parallel(
        ("show", "invoices-v1", "--charges", "-s", today, "-e", today, "--raw"),
        ("show", "user", "--raw"),
        # the human-readable renderings parse our numbers and shapes too
        ("show", "instances", "--full"),
        ("show", "instance", str(instance_id)),
        ("show", "invoices-v1", "--charges", "-s", today, "-e", today, "-f", "tree", "-v", "--full", "--no-color"))
    charges, user = json.loads(raw_charges), json.loads(raw_user)
    assert charges["success"] is True and charges["total"] >= 1
    assert {r["source"] for r in charges["results"]} == {f"instance-{instance_id}"}
    assert user["username"] == "cli-user" and "api_key" not in user
    assert user["balance"] == round(25 - sum(r["amount"] for r in charges["results"]), 6)
    assert charges["results"][0]["amount"] == pytest.approx(3 * one["dph_total"], abs=1e-5)
    assert "relabelled" in table and "running" in table
    assert str(instance_id) in single
    assert f"Instance {instance_id}" in tree and "gpu" in tree and "disk" in tree

    destroyed = cli.run("destroy", "instance", str(instance_id), "-y")
    assert f"destroying instance {instance_id}." in destroyed.stdout
    gone = cli.run("show", "instance", str(instance_id), ok=False)
    assert gone.returncode == 1 and "not found" in gone.stderr
    back = http(cli.url, "POST", "/api/v0/bundles/", key=cli.key, body={"gpu_name": {"eq": "RTX 3090"}, "limit": 100})
    assert offer["id"] in {o["id"] for o in back.json()["offers"]}  # destroying freed the machine


def _row(cli: Cli, instance_id: int) -> dict[str, Any]:
    row: dict[str, Any] = http(cli.url, "GET", f"/api/v0/instances/{instance_id}/", key=cli.key).json()["instances"]
    return row


def test_a_wrong_key_gets_the_clis_own_401_handling(cli: Cli) -> None:
    bad = Cli(cli.url, {**cli.env, "VAST_API_KEY": "not-a-real-key"}, "not-a-real-key")
    result = bad.run("show", "user", ok=False)
    assert "Failed with error 401: Invalid user key" in result.stderr
