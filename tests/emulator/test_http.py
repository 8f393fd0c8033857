"""The API over real sockets: paths, shapes, auth, isolation, pagination, errors."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection, RemoteDisconnected
from typing import Any

import pytest

from emulator import EmulatorServer
from emulator.testing import Control, EmulatorAccount, HttpResult, http

Api = Callable[..., HttpResult]


@pytest.fixture
def acct(emulator_account: Callable[..., EmulatorAccount]) -> EmulatorAccount:
    return emulator_account(balance=500)


@pytest.fixture
def api(emulator: EmulatorServer, acct: EmulatorAccount) -> Api:
    def call(method: str, path: str, **kwargs: Any) -> HttpResult:
        kwargs.setdefault("key", acct.api_key)
        return http(emulator.url, method, path, **kwargs)

    return call


def cheapest(api: Api, gpu: str = "RTX 3090", limit: int = 1) -> list[dict[str, Any]]:
    result = api("POST", "/api/v0/bundles/", body={
        "verified": {"eq": True}, "external": {"eq": False}, "rentable": {"eq": True},
        "gpu_name": {"eq": gpu}, "order": [["dph_total", "asc"]], "type": "on-demand", "limit": limit,
        "allocated_storage": 16.0})
    assert result.status == 200, result.text
    offers: list[dict[str, Any]] = result.json()["offers"]
    return offers


def rent(api: Api, offer_id: int, **body: Any) -> int:
    result = api("PUT", f"/api/v0/asks/{offer_id}/", body={
        "client_id": "me", "image": "pytorch/pytorch:latest", "disk": 16.0, "label": None, **body})
    assert result.status == 200, result.text
    payload = result.json()
    assert payload["success"] is True
    return int(payload["new_contract"])


def test_gpu_names_needs_no_key(emulator: EmulatorServer) -> None:
    result = http(emulator.url, "GET", "/api/v0/gpu_names/unique/")
    assert result.status == 200 and result.content_type == "application/json"
    assert {"RTX 4090", "H100 SXM", "A100 PCIE"} <= set(result.json()["gpu_names"])


@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_unknown_or_missing_key_is_vasts_exact_401(emulator: EmulatorServer, key: str | None) -> None:
    for method, path in [("GET", "/api/v0/users/current"), ("POST", "/api/v0/bundles/"),
                         ("GET", "/api/v1/instances/"), ("DELETE", "/api/v0/instances/5/")]:
        result = http(emulator.url, method, path, key=key, body={} if method != "GET" else None)
        assert result.status == 401
        assert result.content_type == "application/json"
        assert result.json() == {"error": "auth_error", "msg": "Invalid user key"}


def test_key_in_query_string_is_accepted(emulator: EmulatorServer, acct: EmulatorAccount) -> None:
    result = http(emulator.url, "GET", "/api/v0/users/current", query={"api_key": acct.api_key})
    assert result.status == 200 and result.json()["id"] == acct.id


def test_user_record_never_echoes_the_key(api: Api, acct: EmulatorAccount) -> None:
    result = api("GET", "/api/v0/users/current")
    user = result.json()
    assert result.content_type == "application/json"
    assert (user["id"], user["username"], user["balance"], user["credit"]) == (acct.id, acct.username, 500.0, 500.0)
    assert "api_key" not in user and acct.api_key not in result.text


@pytest.mark.parametrize("path", ["/api/v0/users/current", "/api/v0/users/current/"])
def test_trailing_slash_optional(api: Api, path: str) -> None:
    assert api("GET", path).status == 200


def test_search_rent_show_manage_destroy_round_trip(api: Api) -> None:
    [offer] = cheapest(api)
    assert offer["dph_total"] == pytest.approx(offer["dph_base"] + offer["storage_cost"] * 16 / 720)
    instance_id = rent(api, offer["id"], label="team-a", env={"TZ": "UTC"})
    again = api("PUT", f"/api/v0/asks/{offer['id']}/", body={"image": "x", "disk": 16})
    assert again.status == 404
    assert again.json()["error"] == "invalid_args" and "no_such_ask" in again.json()["msg"]
    assert offer["id"] not in {o["id"] for o in cheapest(api, limit=64)}

    shown = api("GET", f"/api/v0/instances/{instance_id}/", query={"owner": "me"})
    row = shown.json()["instances"]
    assert shown.content_type == "application/json"
    assert row["id"] == instance_id and row["label"] == "team-a" and row["actual_status"] == "running"
    assert isinstance(row["start_date"], float) and row["extra_env"] == [["TZ", "UTC"]]

    assert api("PUT", f"/api/v0/instances/{instance_id}/", body={"label": "renamed"}).json() == {"success": True}
    assert api("PUT", f"/api/v0/instances/{instance_id}/", body={"state": "stopped"}).json() == {"success": True}
    row = api("GET", f"/api/v0/instances/{instance_id}/").json()["instances"]
    assert (row["label"], row["actual_status"], row["intended_status"]) == ("renamed", "stopped", "stopped")
    assert api("PUT", f"/api/v0/instances/{instance_id}", body={"state": "running"}).status == 200

    assert api("DELETE", f"/api/v0/instances/{instance_id}/", body={}).json() == {"success": True}
    assert api("GET", f"/api/v0/instances/{instance_id}/").json() == {"instances": None}
    gone = api("DELETE", f"/api/v0/instances/{instance_id}/", body={})
    assert gone.status == 404 and gone.json()["error"] == "no_such_instance"
    assert offer["id"] in {o["id"] for o in cheapest(api, limit=64)}


def test_keys_are_isolated(emulator: EmulatorServer, api: Api,
                           emulator_account: Callable[..., EmulatorAccount]) -> None:
    mine = rent(api, cheapest(api)[0]["id"])
    other = emulator_account(balance=5)
    assert http(emulator.url, "GET", f"/api/v0/instances/{mine}/", key=other.api_key).json() == {"instances": None}
    listing = http(emulator.url, "GET", "/api/v1/instances/", key=other.api_key).json()
    assert listing["instances"] == [] and listing["total_instances"] == 0
    assert http(emulator.url, "GET", "/api/v0/instances/", key=other.api_key).json() == {"instances": []}
    stop = http(emulator.url, "PUT", f"/api/v0/instances/{mine}/", key=other.api_key, body={"state": "stopped"})
    assert stop.status == 404
    assert http(emulator.url, "GET", "/api/v0/users/current", key=other.api_key).json()["balance"] == 5.0


def test_v1_listing_paginates_filters_and_projects(api: Api) -> None:
    offers = cheapest(api, gpu="RTX 4090", limit=30)
    assert len(offers) >= 28
    ids = [rent(api, o["id"], label="even" if i % 2 == 0 else "odd") for i, o in enumerate(offers[:28])]
    first = api("GET", "/api/v1/instances/", query={"select_filters": {}, "order_by": [{"col": "id", "dir": "asc"}],
                                                    "limit": 25}).json()
    assert set(first) == {"success", "instances_found", "total_instances", "label_counts", "next_token", "instances"}
    assert (first["instances_found"], first["total_instances"], len(first["instances"])) == (28, 28, 25)
    assert first["label_counts"] == {"even": 14, "odd": 14}
    second = api("GET", "/api/v1/instances/", query={"order_by": [{"col": "id", "dir": "asc"}], "limit": 25,
                                                     "after_token": first["next_token"]}).json()
    assert second["next_token"] is None
    assert [r["id"] for r in first["instances"] + second["instances"]] == sorted(ids)

    odd = api("GET", "/api/v1/instances/", query={"select_filters": {"label": {"in": ["odd"]}},
                                                  "order_by": [{"col": "dph_total", "dir": "desc"}], "limit": 100,
                                                  "select_cols": ["id", "label", "dph_total"]}).json()
    assert odd["instances_found"] == 14 and len(odd["instances"]) == 14  # limit capped at 25
    assert all(set(r) == {"id", "label", "dph_total"} and r["label"] == "odd" for r in odd["instances"])
    prices = [r["dph_total"] for r in odd["instances"]]
    assert prices == sorted(prices, reverse=True)

    status = api("GET", "/api/v1/instances/", query={"select_filters": {"actual_status": {"in": ["stopped"]}}})
    assert status.json()["instances"] == []
    older = api("GET", "/api/v0/instances/", query={"owner": "me"}).json()["instances"]
    assert sorted(r["id"] for r in older) == sorted(ids)
    filters = api("GET", "/api/v0/instances/filters/").json()["filters"]
    assert filters == [{"actual_status": "running", "verification": "verified", "gpu_name": "RTX 4090"}]


def test_keyset_pages_do_not_skip_or_repeat_under_a_non_unique_order(api: Api) -> None:
    ids = [rent(api, o["id"], label="same") for o in cheapest(api, gpu="RTX 3090", limit=7)]
    seen: list[int] = []
    token = None
    while True:
        query: dict[str, Any] = {"order_by": [{"col": "label", "dir": "desc"}], "limit": 3}
        if token:
            query["after_token"] = token
        page = api("GET", "/api/v1/instances/", query=query).json()
        seen += [r["id"] for r in page["instances"]]
        token = page["next_token"]
        if not token:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))


@pytest.mark.parametrize(("query", "fragment"), [
    ({"select_filters": {"lable": {"eq": "x"}}}, "unknown column"),
    ({"select_filters": "[1]"}, "JSON object"),
    ({"select_filters": "{nope"}, "not valid JSON"),
    ({"order_by": [{"col": "nope", "dir": "asc"}]}, "unknown column"),
    ({"limit": "0"}, "limit"),
    ({"after_token": "!!!"}, "after_token"),
])
def test_bad_listing_queries_are_400(api: Api, query: dict[str, Any], fragment: str) -> None:
    result = api("GET", "/api/v1/instances/", query=query)
    assert result.status == 400 and result.content_type == "application/json"
    assert result.json()["success"] is False and fragment in result.json()["msg"]


def test_manage_errors(api: Api) -> None:
    instance_id = rent(api, cheapest(api)[0]["id"])
    cases: list[tuple[Any, int, str]] = [
        ({"state": "paused"}, 400, "invalid_args"),
        ({"stat": "stopped"}, 400, "invalid_args"),
        ({}, 400, "invalid_args"),
        ([1], 400, "invalid_args"),
        ({"label": "x" * 257}, 400, "label_too_long"),
        ({"label": 5}, 400, "invalid_args"),
    ]
    for body, status, error in cases:
        result = api("PUT", f"/api/v0/instances/{instance_id}/", body=body)
        assert (result.status, result.json()["error"]) == (status, error), body
    missing = api("PUT", "/api/v0/instances/1/", body={"state": "stopped"})
    assert (missing.status, missing.json()["error"]) == (404, "no_such_instance")


def test_bulk_manage_and_destroy(api: Api) -> None:
    ids = [rent(api, o["id"]) for o in cheapest(api, limit=3)]
    assert api("PUT", "/api/v0/instances/", body={"ids": ids[:2], "state": "stopped"}).json() == {"success": True}
    states = {r["id"]: r["actual_status"] for r in api("GET", "/api/v0/instances/").json()["instances"]}
    assert states == {ids[0]: "stopped", ids[1]: "stopped", ids[2]: "running"}
    result = api("DELETE", "/api/v0/instances/", body={"instance_ids": [*ids, 1]}).json()
    assert result == {"success": True, "destroyed": ids, "not_found": [1]}
    assert api("DELETE", "/api/v0/instances/", body={"instance_ids": "all"}).status == 400


def test_create_errors(api: Api) -> None:
    offer_id = cheapest(api)[0]["id"]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"image": "i" * 1025, "disk": 16}, 400, "invalid_args"),
        ({"image": "x", "disk": 4}, 400, "invalid_args"),
        ({"image": "x", "disk": 16, "label": "l" * 257}, 400, "invalid_args"),
        ({"image": "x", "disk": 16, "price": 129}, 400, "invalid_price"),
        ({"image": "x", "disk": "lots"}, 400, "invalid_args"),
        ({"image": ["x"], "disk": 16}, 400, "invalid_args"),
    ]
    for body, status, error in cases:
        result = api("PUT", f"/api/v0/asks/{offer_id}/", body=body)
        assert (result.status, result.json()["error"]) == (status, error), body
    assert api("PUT", "/api/v0/asks/1/", body={"image": "x", "disk": 16}).status == 404


def test_malformed_requests_are_vast_shaped_4xx(api: Api, emulator: EmulatorServer) -> None:
    bad_json = api("POST", "/api/v0/bundles/", raw_body=b"{not json")
    assert bad_json.status == 400 and bad_json.json()["error"] == "invalid_request"
    assert bad_json.content_type == "application/json"
    for body in ([1, 2], "text", 3):
        result = api("POST", "/api/v0/bundles/", body=body)
        assert result.status == 400 and result.json()["success"] is False
    missing = api("GET", "/api/v0/nothing/here")
    assert missing.status == 404 and missing.json()["error"] == "not_found"
    wrong_method = api("PATCH", "/api/v0/users/current", body={})
    assert wrong_method.status == 405 and "GET" in wrong_method.json()["msg"]
    ignored = api("POST", "/api/v0/bundles/", body={"gpu_nmae": {"eq": "RTX 4090"}, "limit": 1})
    assert ignored.status == 200 and ignored.headers["x-emulator-ignored-filters"] == "gpu_nmae"


def test_charges_endpoint_shape_and_day_bounds(api: Api, emulator: EmulatorServer) -> None:
    control = Control(emulator.url)
    clock = control.freeze()
    instance_id = rent(api, cheapest(api)[0]["id"], label="charged")
    control.advance(7200)
    day = int(clock["now"] // 86400 * 86400)
    no_bounds = api("GET", "/api/v0/charges/", query={"select_filters": {"type": {"in": ["instance"]}}})
    assert no_bounds.status == 400 and "day" in no_bounds.json()["msg"]
    result = api("GET", "/api/v0/charges/", query={
        "select_filters": {"day": {"gte": day - 86400, "lte": day + 86400}, "type": {"in": ["instance"]}},
        "latest_first": False, "limit": 20})
    assert result.status == 200 and result.content_type == "application/json"
    page = result.json()
    assert set(page) == {"success", "count", "total", "next_token", "results"}
    assert page["count"] >= 1 and page["next_token"] is None
    row = page["results"][0]
    assert row["source"] == f"instance-{instance_id}" and row["type"] == "instance"
    assert row["metadata"]["label"] == "charged" and row["metadata"]["template_id"] is None
    assert {i["type"] for i in row["items"]} == {"gpu", "disk", "bwu", "bwd"}
    user = api("GET", "/api/v0/users/current").json()
    spent = sum(r["amount"] for r in page["results"])
    assert round(500 - spent, 6) == user["balance"]


def test_request_log_counts_calls_and_never_holds_keys(api: Api, emulator: EmulatorServer, acct: EmulatorAccount,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    control = Control(emulator.url)
    control.call("DELETE", "/requests")
    with caplog.at_level(logging.DEBUG):
        cheapest(api)
        api("GET", "/api/v0/users/current")
        http(emulator.url, "GET", "/api/v0/users/current", query={"api_key": acct.api_key})
        http(emulator.url, "GET", "/api/v0/users/current", key="wrong-key-123")
    log = control.requests()
    assert log["counts"] == {"search": 1, "user": 3}
    assert [(r["operation"], r["status"], r["account_id"]) for r in log["requests"]] == [
        ("search", 200, acct.id), ("user", 200, acct.id), ("user", 200, acct.id), ("user", 401, None)]
    assert log["requests"][2]["path"] == "/api/v0/users/current"
    assert acct.api_key not in str(log) and "wrong-key-123" not in str(log)
    assert acct.api_key not in caplog.text
    assert control.requests("search")["total"] == 1
    state = control.call("GET", "/state")
    assert acct.api_key not in str(state) and "key_sha256" not in str(state)
    assert state["accounts"][str(acct.id)]["balance"] == 500.0


def test_control_plane_accounts_config_and_reset(emulator: EmulatorServer) -> None:
    control = Control(emulator.url)
    made = control.call("POST", "/accounts", {"api_key": "team-key-0001", "balance": 12.5, "username": "ml-research"})
    assert made["account"]["username"] == "ml-research" and "team-key-0001" not in str(made)
    duplicate = http(emulator.url, "POST", "/_emulator/accounts", body={"api_key": "team-key-0001"})
    assert duplicate.status == 409
    topped = control.call("POST", f"/accounts/{made['account']['id']}/balance", {"add": 7.5})
    assert topped["account"]["balance"] == 20.0
    assert control.config(provision_delay=12, rate_limits=True)["provision_delay"] == 12
    assert control.call("GET", "/config")["rate_limits"] is True
    assert http(emulator.url, "POST", "/_emulator/config", body={"provision_delay": -1}).status == 400
    assert http(emulator.url, "POST", "/_emulator/config", body={"bogus": 1}).status == 400
    offer = control.call("POST", "/offers", {"gpu_name": "RTX 4090", "dph_base": "0.3141"})["offer"]
    assert offer["dph_base"] == 0.3141
    reseeded = control.call("POST", "/seed", {"seed": 99, "offers": 50})
    assert reseeded["offers"] == 50
    control.reset()
    assert control.call("GET", "/health")["accounts"] == 0
    assert control.call("GET", "/config")["provision_delay"] == 0.0  # back to the server's settings
    assert http(emulator.url, "GET", "/api/v0/users/current", key="team-key-0001").status == 401


def test_clock_control(emulator: EmulatorServer) -> None:
    control = Control(emulator.url)
    frozen = control.freeze("2026-03-01T12:00:00Z")
    assert frozen["frozen"] is True and frozen["iso"].startswith("2026-03-01T12:00:00")
    assert control.advance(90)["now"] == frozen["now"] + 90
    assert control.clock(freeze=False)["frozen"] is False
    assert http(emulator.url, "POST", "/_emulator/clock", body={"advance": -5}).status == 400
    assert http(emulator.url, "POST", "/_emulator/clock", body={"set": "yesterday"}).status == 400


def test_concurrent_rents_of_one_offer_have_one_winner(emulator: EmulatorServer,
                                                        emulator_account: Callable[..., EmulatorAccount]) -> None:
    renters = [emulator_account() for _ in range(8)]
    offer_id = http(emulator.url, "POST", "/api/v0/bundles/", key=renters[0].api_key, body={"limit": 1}).json()[
        "offers"][0]["id"]
    barrier = threading.Barrier(len(renters))

    def rent_it(acct: EmulatorAccount) -> int:
        barrier.wait()
        return http(emulator.url, "PUT", f"/api/v0/asks/{offer_id}/", key=acct.api_key,
                    body={"image": "x", "disk": 16}).status

    with ThreadPoolExecutor(max_workers=len(renters)) as pool:
        statuses = sorted(pool.map(rent_it, renters))
    assert statuses == [200] + [404] * (len(renters) - 1)


def test_stop_hangs_up_on_keep_alive_connections() -> None:
    server = EmulatorServer(port=0, provision_delay=0).start()
    try:
        conn = HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/api/v0/gpu_names/unique/")
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Connection") != "close"
        response.read()
    finally:
        server.stop()

    def ask_again() -> None:
        conn.request("GET", "/api/v0/gpu_names/unique/")
        conn.getresponse()

    with pytest.raises((ConnectionError, RemoteDisconnected, OSError)):
        ask_again()
    conn.close()


def test_client_text_never_breaks_headers(api: Api, emulator: EmulatorServer) -> None:
    result = api("POST", "/api/v0/bundles/", body={"gpü\r\nX-Evil: 1": {"eq": 1}, "limit": 1})
    assert result.status == 200
    assert "x-evil" not in result.headers and result.headers["x-emulator-ignored-filters"] == "gp???X-Evil??1"
    bad = http(emulator.url, "POST", "/_emulator/faults",
               body={"operation": "user", "headers": {"X-Ok": "a\r\nX-Evil: 1"}})
    assert bad.status == 400


def test_responses_carry_the_virtual_clock(emulator: EmulatorServer) -> None:
    """`Date` (whole seconds, as Vast sends it) and the precise `X-Emulator-Time` come from the virtual clock,
    on API, error and control responses alike."""
    control = Control(emulator.url)
    frozen = control.freeze("2026-03-01T12:00:00Z")["now"]
    control.advance(0.25)
    for path in ("/api/v0/gpu_names/unique/", "/api/v0/users/current", "/_emulator/clock"):
        result = http(emulator.url, "GET", path)
        assert result.headers["date"] == "Sun, 01 Mar 2026 12:00:00 GMT", path
        assert float(result.headers["x-emulator-time"]) == frozen + 0.25, path
