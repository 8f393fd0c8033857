"""The state file: a restarted emulator keeps accounts, instances, charges, rented offers and the clock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from emulator import EmulatorServer
from emulator.persistence import StateFileError
from emulator.testing import Control, http

KEY = "persisted-key-0001"


def _rent_one(url: str) -> tuple[int, int]:
    offer_id = http(url, "POST", "/api/v0/bundles/", key=KEY, body={"limit": 1}).json()["offers"][0]["id"]
    new = http(url, "PUT", f"/api/v0/asks/{offer_id}/", key=KEY, body={"image": "x", "disk": 20, "label": "keep"})
    return offer_id, int(new.json()["new_contract"])


def _charges(url: str, now: float) -> list[dict[str, object]]:
    bounds = {"day": {"gte": now - 10 * 86400, "lte": now}}
    results: list[dict[str, object]] = http(url, "GET", "/api/v0/charges/", key=KEY,
                                            query={"select_filters": bounds}).json()["results"]
    return results


def test_restart_resumes_everything(tmp_path: Path) -> None:
    state_file = tmp_path / "market.json"
    with EmulatorServer(port=0, seed=5, state_file=state_file, provision_delay=0) as first:
        control = Control(first.url)
        control.call("POST", "/accounts", {"api_key": KEY, "balance": 40, "username": "ml-research"})
        clock = control.freeze("2026-02-01T00:00:00Z")
        offer_id, instance_id = _rent_one(first.url)
        control.advance(5 * 3600)
        control.config(strict_search=True)
        before_charges = _charges(first.url, clock["now"] + 5 * 3600)
        before_user = http(first.url, "GET", "/api/v0/users/current", key=KEY).json()
        seed_offers = sorted(first.market.state.offers)
    assert KEY not in state_file.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name != "market.json"]  # no temp files left behind

    with EmulatorServer(port=0, state_file=state_file) as second:
        assert second.restored
        control = Control(second.url)
        assert control.call("GET", "/clock")["now"] == clock["now"] + 5 * 3600  # still frozen, same instant
        assert http(second.url, "GET", "/api/v0/users/current", key=KEY).json() == before_user
        row = http(second.url, "GET", f"/api/v0/instances/{instance_id}/", key=KEY).json()["instances"]
        assert (row["label"], row["actual_status"]) == ("keep", "running")
        assert _charges(second.url, clock["now"] + 5 * 3600) == before_charges
        assert control.call("GET", "/config")["strict_search"] is True
        assert sorted(second.market.state.offers) == seed_offers
        listed = http(second.url, "POST", "/api/v0/bundles/", key=KEY, body={"limit": 1000}).json()["offers"]
        assert offer_id not in {o["id"] for o in listed}
        control.advance(3600)
        assert http(second.url, "GET", "/api/v0/users/current", key=KEY).json()["balance"] < before_user["balance"]


def test_changes_reach_the_file_without_a_shutdown(tmp_path: Path) -> None:
    state_file = tmp_path / "live.json"
    with EmulatorServer(port=0, state_file=state_file, flush_interval=0.05) as server:
        Control(server.url).call("POST", "/accounts", {"api_key": KEY, "username": "early"})
        deadline = time.monotonic() + 5
        while "early" not in state_file.read_text():
            assert time.monotonic() < deadline, "state was not flushed within 5 s"
            time.sleep(0.02)
        json.loads(state_file.read_text())


def test_a_corrupt_state_file_is_refused_not_overwritten(tmp_path: Path) -> None:
    state_file = tmp_path / "bad.json"
    state_file.write_text("{half a document")
    with pytest.raises(StateFileError, match="move it away"):
        EmulatorServer(port=0, state_file=state_file)
    assert state_file.read_text() == "{half a document"
