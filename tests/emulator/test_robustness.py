"""Whatever a client sends, the answer is a Vast-shaped response, never a 500 or a traceback.

Drives `EmulatorApp.handle` (the whole request pipeline minus the socket) with generated bodies and query
strings on every route, so thousands of requests run in seconds.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.bodies import AccountBody
from emulator.query import INSTANCE_FIELDS, OFFER_FIELDS, OPS
from emulator.responses import Request, Response
from emulator.server import EmulatorApp
from tests.emulator.helpers import make_market

KEY = "fuzz-key-000001"

scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["1", "0.95", "RTX_4090", "US", "535.86.05", "true", "running", "", "nan", "1e999"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=10)
op_objects = st.dictionaries(st.sampled_from([*sorted(OPS), "between", "like"]), json_values, max_size=3)


def filters(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from([*fields, "bogus"]), op_objects | json_values, max_size=5)


search_bodies = (filters(sorted(OFFER_FIELDS)).flatmap(lambda f: st.fixed_dictionaries(
    {}, optional={"order": json_values | st.just([["dph_total", "asc"]]), "type": json_values,
                  "limit": json_values, "allocated_storage": json_values}).map(lambda extra: {**f, **extra})))
create_bodies = st.fixed_dictionaries({}, optional={
    k: json_values for k in ("image", "disk", "label", "price", "env", "onstart", "runtype", "args",
                             "template_hash_id", "client_id")})
manage_bodies = st.fixed_dictionaries({}, optional={"state": json_values | st.sampled_from(["running", "stopped"]),
                                                    "label": json_values, "ids": json_values, "x": json_values})
query_params = st.fixed_dictionaries({}, optional={
    "select_filters": filters([*sorted(INSTANCE_FIELDS), "day", "type"]).map(json.dumps) | st.text(max_size=20),
    "order_by": json_values.map(json.dumps), "limit": st.text(max_size=5) | st.integers().map(str),
    "after_token": st.text(max_size=20), "latest_first": st.text(max_size=5),
    "select_cols": json_values.map(json.dumps),
    "q": search_bodies.map(json.dumps),
})

ROUTES = [
    ("POST", "/api/v0/bundles/"), ("GET", "/api/v0/bundles/"), ("PUT", "/api/v0/search/asks/"),
    ("PUT", "/api/v0/asks/{offer}/"), ("GET", "/api/v1/instances/"), ("GET", "/api/v0/instances/"),
    ("GET", "/api/v0/instances/{inst}/"), ("PUT", "/api/v0/instances/{inst}/"), ("PUT", "/api/v0/instances/"),
    ("DELETE", "/api/v0/instances/{inst}/"), ("DELETE", "/api/v0/instances/"), ("GET", "/api/v0/charges/"),
    ("GET", "/api/v0/users/current"), ("GET", "/api/v0/instances/filters/"),
    ("POST", "/_emulator/accounts"), ("POST", "/_emulator/clock"), ("POST", "/_emulator/config"),
    ("POST", "/_emulator/faults"), ("POST", "/_emulator/offers"), ("POST", "/_emulator/races"),
    ("POST", "/_emulator/instances/{inst}/state"), ("POST", "/_emulator/accounts/100001/balance"),
]


def app() -> tuple[EmulatorApp, int, int]:
    market = make_market(offers=40)
    acct = market.create_account(AccountBody(api_key=KEY)).account
    offer_id = next(iter(market.state.offers))
    from emulator.bodies import CreateInstanceBody

    inst = market.create_instance(acct, offer_id, CreateInstanceBody(image="x", disk=10))
    return EmulatorApp(market, sleep=lambda _s: None), next(iter(list(market.state.offers)[1:])), inst.id


def check(response: Response) -> None:
    assert 200 <= response.status < 500, (response.status, response.payload)
    body, content_type = response.encode()
    if response.status != 429:
        assert content_type == "application/json"
        payload = json.loads(body)
        if response.status >= 400:
            assert payload["msg"] and "Traceback" not in payload["msg"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES),
       body=search_bodies | create_bodies | manage_bodies | json_values
       | st.binary(max_size=40).map(lambda b: b"RAW" + b),
       query=query_params)
def test_no_request_gets_a_500(route: tuple[str, str], body: Any, query: dict[str, str]) -> None:
    emulator_app, offer_id, instance_id = app()
    method, path = route
    raw = body[3:] if isinstance(body, bytes) else json.dumps(body).encode()
    request = Request(method=method, path=path.format(offer=offer_id, inst=instance_id), query=query,
                      headers={"authorization": f"Bearer {KEY}"}, body=raw if method != "GET" else b"")
    check(emulator_app.handle(request))
