"""GPU utilisation as a curve over virtual time, in instance rows as Vast shows it (`gpu_util`, a fraction), and a
team account's charges and credit exhaustion as the official CLI sees them with the team's key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emulator import EmulatorServer
from emulator.testing import Control, http, make_account, make_team, make_team_key
from emulator.utilization import util_at
from tests.emulator.official_cli import Cli

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()


def test_a_curve_is_interpolated_and_held_at_its_ends() -> None:
    curve = [(100.0, 0.9), (200.0, 0.1)]
    assert [util_at(curve, t) for t in (0, 100, 150, 200, 1e9)] == [0.9, 0.9, pytest.approx(0.5), 0.1, 0.1]
    assert util_at([], 5) == 0.0


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(port=0, seed=5, provision_delay=0, freeze_clock=True) as srv:
        Control(srv.url).freeze(T0)
        yield srv


def _rent(srv: EmulatorServer, key: str) -> int:
    offer = http(srv.url, "POST", "/api/v0/bundles/", key=key,
                 body={"gpu_name": {"eq": "RTX 4090"}, "order": [["dph_total", "asc"]], "limit": 1}).json()["offers"][0]
    body = {"client_id": "me", "image": "pytorch/pytorch", "disk": 16, "label": "util"}
    return int(http(srv.url, "PUT", f"/api/v0/asks/{offer['id']}/", key=key, body=body).json()["new_contract"])


def test_the_control_plane_sets_a_curve_and_rows_follow_the_virtual_clock(server: EmulatorServer,
                                                                          tmp_path: Path) -> None:
    owner = make_account(server, balance=100)
    instance = _rent(server, owner.api_key)
    control = Control(server.url)
    row = control.gpu_util(instance, points=[{"at": T0, "util": 0.9}, {"at": "2026-11-02T11:00:00Z", "util": 0.1}])
    assert row["gpu_util"] == 0.9
    control.advance(3600)
    cli = Cli.at(server.url, owner.api_key, tmp_path / "home")
    (shown,) = cli.raw("show", "instances")
    assert shown["gpu_util"] == pytest.approx(0.5)  # halfway down the curve, in the official CLI's own output
    http(server.url, "PUT", f"/api/v0/instances/{instance}/", key=owner.api_key, body={"state": "stopped"})
    assert cli.raw("show", "instances")[0]["gpu_util"] is None  # not running: Vast leaves it empty
    bad = http(server.url, "POST", f"/_emulator/instances/{instance}/gpu_util", body={"util": 1.5})
    assert bad.status == 400 and "util" in bad.json()["msg"]
    both = http(server.url, "POST", f"/_emulator/instances/{instance}/gpu_util", body={"util": 0.5, "points": []})
    assert both.status == 400 and 'either "points"' in both.json()["msg"]
    assert http(server.url, "POST", "/_emulator/instances/999/gpu_util", body={"util": 0.5}).status == 404


def test_a_team_accounts_charges_show_through_the_official_cli_and_its_credit_runs_out(server: EmulatorServer,
                                                                                        tmp_path: Path) -> None:
    owner = make_account(server, balance=100, username="platform")
    team = make_team(server, owner, name="vision", transfer_credit=1)
    key = make_team_key(server, team)
    instance = _rent(server, key)
    Control(server.url).advance(6 * 3600)  # far more than $1 of GPU: the team's credit runs out on the way
    cli = Cli.at(server.url, key, tmp_path / "home")
    (shown,) = cli.raw("show", "instances")
    assert shown["id"] == instance and shown["actual_status"] == "stopped"
    assert "credit exhausted" in shown["status_msg"]
    out = cli.run("show", "invoices-v1", "--charges", "-s", "2026-11-02", "-e", "2026-11-02", "--raw").stdout
    charges = json.loads(out)
    rows = charges["results"] if isinstance(charges, dict) else charges
    assert [r["source"] for r in rows] == [f"instance-{instance}"]
    assert sum(r["amount"] for r in rows) == pytest.approx(1 - cli.raw("show", "user")["balance"], abs=1e-6)
