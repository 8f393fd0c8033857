"""Fault rules on the control plane: injected statuses, bodies, drops, latency and after-the-fact failures."""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Callable
from http.client import RemoteDisconnected

import pytest

from emulator import EmulatorServer
from emulator.testing import Control, EmulatorAccount, http


@pytest.fixture
def key(emulator_account: Callable[..., EmulatorAccount]) -> str:
    return emulator_account().api_key


def test_status_body_and_count(emulator: EmulatorServer, key: str) -> None:
    control = Control(emulator.url)
    rule = control.fault(operation="user", status=503, count=2)["fault"]
    assert rule["id"] >= 1 and rule["fired"] == 0
    results = [http(emulator.url, "GET", "/api/v0/users/current", key=key) for _ in range(3)]
    assert [r.status for r in results] == [503, 503, 200]
    assert results[0].json()["error"] == "injected_fault"
    assert control.call("GET", "/faults")["faults"][0]["fired"] == 2


def test_probability_is_seeded_and_repeatable(emulator: EmulatorServer, key: str) -> None:
    control = Control(emulator.url)

    def run() -> list[int]:
        control.call("DELETE", "/faults")
        control.fault(operation="search", status=502, probability=0.5)
        return [http(emulator.url, "POST", "/api/v0/bundles/", key=key, body={"limit": 1}).status
                for _ in range(30)]

    first = run()
    assert 0 < first.count(502) < 30
    assert run() == first
    control.call("DELETE", "/faults")
    control.fault(operation="search", status=502, probability=0.0)
    assert http(emulator.url, "POST", "/api/v0/bundles/", key=key, body={}).status == 200


def test_text_body_and_headers(emulator: EmulatorServer, key: str) -> None:
    control = Control(emulator.url)
    control.fault(operation="search", status=429, body={"error": "search_quota_exceeded", "msg": "daily quota"},
                  headers={"X-RateLimit-Reset": "1767225600"}, count=1)
    control.fault(operation="charges", status=502, body="<html>Bad Gateway</html>", count=1)
    quota = http(emulator.url, "POST", "/api/v0/bundles/", key=key, body={})
    assert quota.status == 429 and quota.json()["error"] == "search_quota_exceeded"
    assert quota.headers["x-ratelimit-reset"] == "1767225600"
    gateway = http(emulator.url, "GET", "/api/v0/charges/", key=key)
    assert gateway.status == 502 and gateway.text == "<html>Bad Gateway</html>"
    assert gateway.content_type.startswith("text/plain")


def test_after_phase_rents_then_reports_failure(emulator: EmulatorServer, key: str) -> None:
    """The classic duplicate-instance hazard: the rent happened, the client saw a 502."""
    control = Control(emulator.url)
    offers = http(emulator.url, "POST", "/api/v0/bundles/", key=key, body={"limit": 1}).json()["offers"]
    control.fault(operation="create", status=502, phase="after", count=1)
    result = http(emulator.url, "PUT", f"/api/v0/asks/{offers[0]['id']}/", key=key,
                  body={"image": "x", "disk": 16, "label": "owned-by-me"})
    assert result.status == 502
    listing = http(emulator.url, "GET", "/api/v1/instances/", key=key).json()
    assert [r["label"] for r in listing["instances"]] == ["owned-by-me"]


def test_dropped_connection_and_latency(emulator: EmulatorServer, key: str) -> None:
    control = Control(emulator.url)
    control.fault(operation="show", status=0, count=1)
    with pytest.raises((urllib.error.URLError, RemoteDisconnected, ConnectionError)):
        http(emulator.url, "GET", "/api/v0/instances/5/", key=key)
    assert http(emulator.url, "GET", "/api/v0/instances/5/", key=key).status == 200
    control.fault(operation="*", status=500, latency_ms=150, count=1)
    started = time.monotonic()
    assert http(emulator.url, "GET", "/api/v0/users/current", key=key).status == 500
    assert time.monotonic() - started >= 0.15
    control.config(latency_ms=100)
    started = time.monotonic()
    assert http(emulator.url, "GET", "/api/v0/users/current", key=key).status == 200
    assert time.monotonic() - started >= 0.1


def test_provision_faults_over_http(emulator: EmulatorServer, key: str) -> None:
    control = Control(emulator.url)
    control.fault(operation="provision", outcome="exited", count=1)
    offer_id = http(emulator.url, "POST", "/api/v0/bundles/", key=key, body={"limit": 1}).json()["offers"][0]["id"]
    new = http(emulator.url, "PUT", f"/api/v0/asks/{offer_id}/", key=key, body={"image": "x", "disk": 16}).json()
    row = http(emulator.url, "GET", f"/api/v0/instances/{new['new_contract']}/", key=key).json()["instances"]
    assert row["actual_status"] == "exited"
    forced = control.call("POST", f"/instances/{new['new_contract']}/state", {"actual_status": "running"})
    assert forced["instance"]["actual_status"] == "running"


@pytest.mark.parametrize("body", [
    {"operation": "explode", "status": 500},
    {"operation": "provision"},
    {"operation": "search", "outcome": "exited"},
    {"operation": "search", "status": 42},
    {"operation": "search", "probability": 2},
    {"operation": "search", "typo": 1},
])
def test_bad_rules_are_400(emulator: EmulatorServer, body: dict[str, object]) -> None:
    result = http(emulator.url, "POST", "/_emulator/faults", body=body)
    assert result.status == 400 and result.json()["success"] is False
