"""Each operation's request on the wire (paths, queries, bodies as the official CLI sends them) and its
answer as typed models. Pagination, idempotent destroy, configuration from the environment."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from urllib.parse import quote_plus

import httpx
import pytest

from tests.client.conftest import API_KEY, Script, body_of, json_reply, query_of, text_reply
from vastclient import (
    AuthError,
    InvalidRequestError,
    MissingApiKeyError,
    NoSuchInstanceError,
    NotFoundError,
    OfferQuery,
    TransportError,
    UnexpectedResponseError,
    VastClient,
)

LIST = "GET /api/v1/instances/"


def row(id_: int, label: str | None = "a", status: str = "running") -> dict[str, object]:
    return {"id": id_, "label": label, "actual_status": status, "start_date": 1.8e9, "extra_env": []}


def page(rows: list[dict[str, object]], token: str | None = None) -> httpx.Response:
    return json_reply(200, {"success": True, "instances_found": len(rows), "next_token": token, "instances": rows})


# -- configuration --------------------------------------------------------------------------------------


def test_key_and_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAST_API_KEY", "  env-key  ")
    monkeypatch.setenv("VAST_URL", "http://127.0.0.1:9999/")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_reply(200, {"id": 1})

    with VastClient(transport=httpx.MockTransport(handler)) as client:
        assert client.base_url == "http://127.0.0.1:9999"
        client.current_user()
    assert str(seen[0].url) == "http://127.0.0.1:9999/api/v0/users/current"
    assert seen[0].headers["Authorization"] == "Bearer env-key"


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAST_API_KEY", "env-key")
    monkeypatch.setenv("VAST_URL", "http://env.test")
    with VastClient(api_key="arg-key", base_url="https://arg.test") as client:
        assert client.base_url == "https://arg.test"


def test_default_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAST_URL", raising=False)
    with VastClient(api_key="k") as client:
        assert client.base_url == "https://console.vast.ai"


@pytest.mark.parametrize("env_value", [None, "", "   "])
def test_missing_key_says_how_to_set_one(monkeypatch: pytest.MonkeyPatch, env_value: str | None) -> None:
    if env_value is None:
        monkeypatch.delenv("VAST_API_KEY", raising=False)
    else:
        monkeypatch.setenv("VAST_API_KEY", env_value)
    with pytest.raises(MissingApiKeyError) as caught:
        VastClient()
    assert isinstance(caught.value, AuthError)
    assert "VAST_API_KEY" in str(caught.value)
    assert "pulumi config set --secret vastai:apiKey" in str(caught.value)


def test_a_closed_client_refuses_politely(script: Script, make_client: Callable[..., VastClient]) -> None:
    client = make_client()
    with client:
        pass
    with pytest.raises(TransportError, match="closed"):
        client.current_user()
    assert script.requests == []


# -- marketplace ------------------------------------------------------------------------------------------


def test_gpu_names(script: Script, client: VastClient) -> None:
    script.on("GET /api/v0/gpu_names/unique/", json_reply(200, {"gpu_names": ["RTX 4090", "A100 PCIE", "RTX 4090"]}))
    assert client.gpu_names() == ["A100 PCIE", "RTX 4090"]


@pytest.mark.parametrize("body", [{"names": []}, {"gpu_names": "RTX 4090"}, {"gpu_names": [1]}, [1]])
def test_gpu_names_in_another_shape(script: Script, client: VastClient, body: object) -> None:
    script.on("GET /api/v0/gpu_names/unique/", json_reply(200, body))
    with pytest.raises(UnexpectedResponseError):
        client.gpu_names()


def offer(id_: int, **fields: object) -> dict[str, object]:
    return {"id": id_, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.4, "reliability2": 0.99,
            "verification": "verified", "rentable": True, **fields}  # fmt: skip


def test_search_offers(script: Script, client: VastClient) -> None:
    rows = [
        offer(1),
        offer(2, dph_total="0.55"),
        offer(3, gpu_name="RTX 3090"),  # Vast ignored the gpu filter
        offer(4, dph_total=0.9),  # ... and the price cap
        {"id": 5, "gpu_name": None},  # a row we cannot read
        offer(6, num_gpus="1"),
    ]
    script.on("POST /api/v0/bundles/", json_reply(200, {"offers": rows}))
    query = OfferQuery(gpu_names="RTX_4090", num_gpus=1, max_dph=0.6)
    assert [o.id for o in client.search_offers(query)] == [1, 2, 6]
    (request,) = script.requests
    assert request.headers["Content-Type"] == "application/json"
    assert body_of(request) == query.to_filter()


def test_search_without_offers_key(script: Script, client: VastClient) -> None:
    script.on("POST /api/v0/bundles/", json_reply(200, {"results": []}))
    with pytest.raises(UnexpectedResponseError):
        client.search_offers(OfferQuery())


# -- instances ----------------------------------------------------------------------------------------------


def test_list_instances_follows_next_token(script: Script, client: VastClient) -> None:
    script.on(LIST, page([row(i) for i in range(1, 26)], "t1"), page([row(26), row(27)], "t2"), page([], None))
    instances = client.list_instances()
    assert [i.id for i in instances] == list(range(1, 28))
    queries = [query_of(r) for r in script.requests]
    assert [q.get("after_token") for q in queries] == [None, "t1", "t2"]
    assert all(q["limit"] == 25 for q in queries)
    assert all(q["order_by"] == [{"col": "id", "dir": "asc"}] for q in queries)
    assert queries[0]["select_filters"] == {}


def test_list_instances_query_is_encoded_like_the_cli(script: Script, client: VastClient) -> None:
    script.on(LIST, page([row(1, "x [vg:s/n]")]))
    client.list_instances(labels=["x [vg:s/n]"], statuses=["running", "loading"])
    filters = {"actual_status": {"in": ["running", "loading"]}, "label": {"in": ["x [vg:s/n]"]}}
    order = [{"col": "id", "dir": "asc"}]
    expected = f"select_filters={quote_plus(json.dumps(filters))}&order_by={quote_plus(json.dumps(order))}&limit=25"
    assert script.requests[0].url.query.decode() == expected


def test_list_instances_rechecks_the_filters(script: Script, client: VastClient) -> None:
    # Vast may ignore a filter instead of refusing it: rows that do not match are not ours to act on.
    script.on(LIST, page([row(1, "mine"), row(2, "other"), row(3, None), row(4, "mine", "exited")]))
    assert [i.id for i in client.list_instances(labels=["mine"])] == [1, 4]
    assert [i.id for i in client.list_instances(labels=["mine"], statuses=["running"])] == [1]


def test_list_instances_stops_on_a_repeated_token(script: Script, client: VastClient) -> None:
    script.on(LIST, page([row(1)], "same"))
    with pytest.raises(UnexpectedResponseError, match="repeats"):
        client.list_instances()
    assert len(script.requests) == 2


def test_list_instances_null_page(script: Script, client: VastClient) -> None:
    script.on(LIST, json_reply(200, {"success": True, "instances": None, "next_token": None}))
    assert client.list_instances() == []


def test_list_instances_refuses_an_unreadable_row(script: Script, client: VastClient) -> None:
    # Unlike offers, a skipped instance could be one of ours that a caller would then rent again.
    script.on(LIST, page([row(1), {"id": "not-a-number"}]))
    with pytest.raises(UnexpectedResponseError, match="Instance"):
        client.list_instances()


def test_get_instance(script: Script, client: VastClient) -> None:
    script.on("GET /api/v0/instances/5/", json_reply(200, {"instances": row(5, "x")}))
    inst = client.get_instance(5)
    assert inst is not None and inst.id == 5 and inst.phase == "running"
    assert script.requests[0].url.query == b"owner=me"


@pytest.mark.parametrize(
    "reply",
    [
        json_reply(200, {"instances": None}),
        json_reply(404, {"success": False, "error": "no_such_instance", "msg": "Instance 5 not found"}),
    ],
)
def test_get_instance_gone_is_none(script: Script, client: VastClient, reply: httpx.Response) -> None:
    script.on("GET /api/v0/instances/5/", reply)
    assert client.get_instance(5) is None


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (lambda c: c.start(9), {"state": "running"}),
        (lambda c: c.stop(9), {"state": "stopped"}),
        (lambda c: c.set_label(9, "new [vg:s/n]"), {"label": "new [vg:s/n]"}),
    ],
)
def test_manage(script: Script, client: VastClient, call: Callable[[VastClient], None], body: object) -> None:
    script.on("PUT /api/v0/instances/9/", json_reply(200, {"success": True}))
    call(client)
    assert body_of(script.requests[0]) == body


def test_start_a_gone_instance(script: Script, client: VastClient) -> None:
    script.on("PUT /api/v0/instances/9/", json_reply(404, {"success": False, "error": "no_such_instance"}))
    with pytest.raises(NotFoundError):
        client.start(9)


@pytest.mark.parametrize("label", ["", "   ", "x" * 257])
def test_set_label_checks_before_sending(script: Script, client: VastClient, label: str) -> None:
    with pytest.raises(InvalidRequestError):
        client.set_label(9, label)
    assert script.requests == []


def test_destroy(script: Script, client: VastClient) -> None:
    script.on("DELETE /api/v0/instances/9/", json_reply(200, {"success": True}))
    client.destroy(9)
    assert body_of(script.requests[0]) == {}


@pytest.mark.parametrize(
    "reply",
    [
        json_reply(404, {"success": False, "error": "no_such_instance", "msg": "gone"}),
        json_reply(200, {"success": False, "error": "no_such_instance", "msg": "gone"}),
    ],
)
def test_destroying_a_destroyed_instance_is_fine(script: Script, client: VastClient, reply: httpx.Response) -> None:
    script.on("DELETE /api/v0/instances/9/", reply)
    client.destroy(9)


@pytest.mark.parametrize("reply", [text_reply(404, "<html>Not Found</html>"),
                                   json_reply(404, {"error": "not_found", "msg": "no route"})])
def test_a_404_that_is_not_vasts_no_such_instance_means_nothing(
        script: Script, client: VastClient, reply: httpx.Response) -> None:
    """A gateway's or a wrong base URL's 404: the instance may be there and billing, so neither destroy nor show
    may report it gone."""
    script.on("DELETE /api/v0/instances/9/", reply)
    script.on("GET /api/v0/instances/9/", reply)
    with pytest.raises(NotFoundError) as destroyed:
        client.destroy(9)
    assert not isinstance(destroyed.value, NoSuchInstanceError)
    with pytest.raises(NotFoundError):
        client.get_instance(9)


def test_destroy_whose_answer_was_lost_is_fine(script: Script, client: VastClient) -> None:
    # The first DELETE worked but its answer never came; the retry finds nothing left to destroy.
    script.on("DELETE /api/v0/instances/9/", httpx.ReadTimeout("lost"), json_reply(404, {"error": "no_such_instance"}))
    client.destroy(9)
    assert len(script.requests) == 2


def test_destroy_still_reports_other_failures(script: Script, client: VastClient) -> None:
    script.on("DELETE /api/v0/instances/9/", json_reply(401, {"error": "auth_error", "msg": "Invalid user key"}))
    with pytest.raises(AuthError):
        client.destroy(9)


# -- account ------------------------------------------------------------------------------------------------


def test_current_user(script: Script, client: VastClient) -> None:
    script.on(
        "GET /api/v0/users/current", json_reply(200, {"id": 7, "email": "e@x", "balance": 10.5, "api_key": API_KEY})
    )
    user = client.current_user()
    assert (user.id, user.email, str(user.balance)) == (7, "e@x", "10.5")
    assert script.requests[0].content == b""  # GET carries no body


def charge(source: str, amount: float) -> dict[str, object]:
    return {"type": "instance", "source": source, "amount": amount, "start": 1.8e9, "end": 1.8e9 + 3600,
            "metadata": {"label": "a"}, "items": [{"type": "gpu", "amount": amount}]}  # fmt: skip


def test_charges_pages_through_a_date_range(script: Script, client: VastClient) -> None:
    script.on(
        "GET /api/v0/charges/",
        json_reply(200, {"success": True, "count": 2, "total": 3, "next_token": "n1",
                         "results": [charge("instance-1", 0.5), charge("instance-2", 0.25)]}),
        json_reply(200, {"success": True, "count": 1, "total": 3, "next_token": None,
                         "results": [charge("instance-1", 0.125)]}),
    )  # fmt: skip
    charges = client.charges(date(2026, 11, 1), date(2026, 11, 30))
    assert [(c.instance_id, str(c.amount)) for c in charges] == [(1, "0.5"), (2, "0.25"), (1, "0.125")]
    first, second = (query_of(r) for r in script.requests)
    assert first["select_filters"] == {"day": {"gte": 1793491200, "lte": 1795996800}, "type": {"in": ["instance"]}}
    assert first["latest_first"] is False and first["limit"] == 100 and "after_token" not in first
    assert second["after_token"] == "n1"


def test_charges_types_and_bad_ranges(script: Script, client: VastClient) -> None:
    script.on("GET /api/v0/charges/", json_reply(200, {"results": [], "next_token": None}))
    assert client.charges(date(2026, 1, 2), date(2026, 1, 2), types=["instance", "volume"]) == []
    assert query_of(script.requests[0])["select_filters"]["type"] == {"in": ["instance", "volume"]}
    with pytest.raises(InvalidRequestError):
        client.charges(date(2026, 1, 2), date(2026, 1, 1))
    with pytest.raises(InvalidRequestError):
        client.charges(date(2026, 1, 1), date(2026, 1, 2), types=[])
    assert len(script.requests) == 1


# -- Vast's clock -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Date": "Tue, 03 Nov 2026 08:00:00 GMT"}, 1793692800.0),  # real Vast: HTTP Date, whole seconds
    ({"Date": "Tue, 03 Nov 2026 08:00:00 GMT", "X-Emulator-Time": "1793692800.375"}, 1793692800.375),
    ({"Date": "not a date"}, None),
    ({"X-Emulator-Time": "nan"}, None),
])
def test_last_server_time_from_date_or_the_emulators_precise_header(headers: dict[str, str],
                                                                   expected: float | None) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": 1}, headers=headers)

    with VastClient(api_key=API_KEY, base_url="http://vast.test", transport=httpx.MockTransport(handler)) as client:
        assert client.last_server_time is None
        client.current_user()
        assert client.last_server_time == expected
