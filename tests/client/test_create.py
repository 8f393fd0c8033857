"""Renting: the body the official CLI sends, and never renting twice when an answer is lost.

A rent whose outcome is unknown (timeout, dropped connection, gateway 5xx, a 2xx without an id) is only
retried after listing instances by the caller's label shows it did not happen.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.client.conftest import FakeClock, Script, body_of, json_reply, query_of, text_reply
from tests.client.official import run_official
from vastclient import (
    ApiError,
    AuthError,
    CreateOutcomeUnknownError,
    Instance,
    InvalidRequestError,
    OfferUnavailableError,
    RateLimitedError,
    TransportError,
    UnexpectedResponseError,
    VastClient,
    keep_one,
)

RENT = "PUT /api/v0/asks/42/"
LIST = "GET /api/v1/instances/"
LABEL = "train [vg:dev/gpu-a]"
RENTED = json_reply(200, {"success": True, "new_contract": 901})
NO_SUCH_ASK = json_reply(
    404,
    {
        "success": False,
        "error": "invalid_args",
        "msg": "error 404/3603: no_such_ask  Instance type by id 42 is not available.",
    },
)


def listing(*ids: int, label: str = LABEL) -> httpx.Response:
    rows = [{"id": i, "label": label, "actual_status": "loading", "start_date": 1.8e9, "extra_env": []} for i in ids]
    return json_reply(200, {"success": True, "next_token": None, "instances": rows})


def rent(client: VastClient) -> int:
    return client.create_instance(42, image="pytorch/pytorch:latest", disk_gb=20, label=LABEL)


# -- the request ---------------------------------------------------------------------------------------------

_OFFICIAL_PAYLOADS = """
import json, sys
from vastai.api.instances import build_create_instance_payload
for kwargs in json.loads(sys.argv[1]):
    print(json.dumps(build_create_instance_payload(**kwargs)))
"""

# (our keyword arguments, the official builder's for the same rent)
PAYLOAD_CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"image": "pytorch/pytorch:latest", "disk_gb": 20, "label": LABEL},
        {"image": "pytorch/pytorch:latest", "disk": 20.0, "label": LABEL, "runtype": "ssh", "cancel_unavail": True},
    ),
    (
        {"image": "vllm/vllm-openai", "disk_gb": 64.5, "label": LABEL, "env": {"HF_TOKEN": "x", "-p 8000:8000": "1"},
         "onstart": "echo hi", "price": 0.35, "runtype": "jupyter_proxy ssh_proxy", "cancel_unavail": False,
         "args": ["--model", "m"], "image_login": "-u u -p p docker.io"},
        {"image": "vllm/vllm-openai", "disk": 64.5, "label": LABEL, "env": {"HF_TOKEN": "x", "-p 8000:8000": "1"},
         "onstart_cmd": "echo hi", "bid_price": 0.35, "runtype": "jupyter_proxy ssh_proxy", "cancel_unavail": False,
         "args": ["--model", "m"], "login": "-u u -p p docker.io"},
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def official_payloads(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = run_official(
        _OFFICIAL_PAYLOADS, json.dumps([theirs for _, theirs in PAYLOAD_CASES]), scratch=tmp_path_factory.mktemp("cli")
    )
    return out.splitlines()


@pytest.mark.parametrize("case", range(len(PAYLOAD_CASES)))
def test_body_is_the_official_clis_byte_for_byte(
    script: Script, client: VastClient, official_payloads: list[str], case: int
) -> None:
    script.on(RENT, RENTED)
    client.create_instance(42, **PAYLOAD_CASES[case][0])
    # requests serialises `json=` with json.dumps' defaults; so do we
    assert script.requests[0].content.decode() == official_payloads[case]


def test_rent_returns_the_new_contract(script: Script, client: VastClient) -> None:
    script.on(RENT, RENTED)
    assert rent(client) == 901
    body = body_of(script.requests[0])
    assert body["client_id"] == "me" and body["price"] is None and body["disk"] == 20.0
    assert set(body) >= {"client_id", "image", "env", "price", "disk", "label", "extra", "onstart", "image_login",
                         "python_utf8", "lang_utf8", "use_jupyter_lab", "jupyter_dir", "force", "cancel_unavail",
                         "template_hash_id", "user", "runtype"}  # fmt: skip


def test_new_contract_as_a_string(script: Script, client: VastClient) -> None:
    script.on(RENT, json_reply(200, {"success": True, "new_contract": "901"}))
    assert rent(client) == 901


@pytest.mark.parametrize(
    "bad",
    [
        {"label": ""},
        {"label": "   "},
        {"label": "x" * 257},
        {"image": ""},
        {"image": "i" * 1025},
        {"disk_gb": 7.9},
        {"price": 0.0001},
        {"price": 200},
    ],
)
def test_arguments_vast_would_refuse_are_refused_first(
    script: Script, client: VastClient, bad: dict[str, object]
) -> None:
    kwargs: dict[str, object] = {"image": "img", "disk_gb": 10, "label": LABEL, **bad}
    with pytest.raises(InvalidRequestError):
        client.create_instance(42, **kwargs)  # type: ignore[arg-type]
    assert script.requests == []


def test_label_is_required(script: Script, client: VastClient) -> None:
    with pytest.raises(TypeError):
        client.create_instance(42, image="img", disk_gb=10)  # type: ignore[call-arg]
    assert script.requests == []


# -- definite outcomes: no check, plain retry rules -----------------------------------------------------------


def test_offer_taken_is_not_retried_and_not_checked(script: Script, client: VastClient) -> None:
    script.on(RENT, NO_SUCH_ASK)
    with pytest.raises(OfferUnavailableError):
        rent(client)
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "reply", [json_reply(400, {"error": "invalid_price"}), json_reply(403, {"error": "forbidden"})]
)
def test_refused_rents_are_not_retried(script: Script, client: VastClient, reply: httpx.Response) -> None:
    script.on(RENT, reply, RENTED)
    with pytest.raises((ApiError, AuthError)):
        rent(client)
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "first",
    [text_reply(429, "API requests too frequent endpoint threshold=4.5"), httpx.ConnectError("refused"),
     httpx.ConnectTimeout("connect")],
)  # fmt: skip
def test_rents_that_never_reached_vast_are_simply_retried(
    script: Script, client: VastClient, first: httpx.Response | Exception
) -> None:
    script.on(RENT, first, RENTED)
    assert rent(client) == 901
    assert len(script.calls(RENT)) == 2 and script.calls(LIST) == []


def test_rate_limited_rents_give_up_as_rate_limited(script: Script, client: VastClient) -> None:
    script.on(RENT, text_reply(429, "slow down"))
    with pytest.raises(RateLimitedError):
        rent(client)
    assert len(script.calls(RENT)) == 5 and script.calls(LIST) == []


# -- unknown outcomes: check by label before anything else ------------------------------------------------------

UNKNOWN = [
    httpx.ReadTimeout("no answer"),
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
    httpx.ReadError("connection reset"),
    httpx.WriteTimeout("half sent"),
    text_reply(502, "Bad Gateway"),
    text_reply(503, "Service Unavailable"),
    text_reply(504, "Gateway Timeout"),
]


@pytest.mark.parametrize("first", UNKNOWN)
def test_lost_answer_but_rented_returns_that_instance(
    script: Script, client: VastClient, first: httpx.Response | Exception
) -> None:
    script.on(RENT, first, RENTED)
    script.on(LIST, listing(777))
    assert rent(client) == 777
    assert len(script.calls(RENT)) == 1, "must not rent a second time"
    assert query_of(script.calls(LIST)[0])["select_filters"] == {"label": {"in": [LABEL]}}


@pytest.mark.parametrize("first", UNKNOWN)
def test_lost_answer_and_not_rented_is_retried(
    script: Script, client: VastClient, first: httpx.Response | Exception
) -> None:
    script.on(RENT, first, RENTED)
    script.on(LIST, listing())
    assert rent(client) == 901
    assert [r.method for r in script.requests] == ["PUT", "GET", "PUT"]


def test_a_500_is_checked_but_not_retried(script: Script, client: VastClient) -> None:
    script.on(RENT, text_reply(500, "Internal Server Error"), RENTED)
    script.on(LIST, listing())
    with pytest.raises(ApiError) as caught:
        rent(client)
    assert caught.value.status == 500
    assert [r.method for r in script.requests] == ["PUT", "GET"]


def test_a_500_that_rented_anyway_returns_the_instance(script: Script, client: VastClient) -> None:
    script.on(RENT, text_reply(500, "Internal Server Error"))
    script.on(LIST, listing(778))
    assert rent(client) == 778


def test_a_2xx_without_an_id_is_checked(script: Script, client: VastClient) -> None:
    script.on(RENT, json_reply(200, {"success": True}))
    script.on(LIST, listing(779))
    assert rent(client) == 779


def test_a_2xx_without_an_id_and_nothing_rented(script: Script, client: VastClient) -> None:
    script.on(RENT, json_reply(200, {"success": True, "new_contract": None}))
    script.on(LIST, listing())
    with pytest.raises(UnexpectedResponseError):
        rent(client)
    assert len(script.calls(RENT)) == 1


def test_a_listing_that_lags_is_caught_by_the_offer_being_ours(script: Script, client: VastClient) -> None:
    # Attempt 1 rented the offer but the answer was lost and the listing did not show it yet; the retry
    # finds the offer taken (by us), so the label is checked again before giving the offer up.
    script.on(RENT, httpx.ReadTimeout("lost"), NO_SUCH_ASK)
    script.on(LIST, listing(), listing(780))
    assert rent(client) == 780
    assert [r.method for r in script.requests] == ["PUT", "GET", "PUT", "GET"]


def test_offer_taken_by_someone_else_after_a_lost_answer(script: Script, client: VastClient) -> None:
    script.on(RENT, httpx.ReadTimeout("lost"), NO_SUCH_ASK)
    script.on(LIST, listing())
    with pytest.raises(OfferUnavailableError):
        rent(client)
    assert [r.method for r in script.requests] == ["PUT", "GET", "PUT", "GET"]


def test_only_instances_really_carrying_the_label_count(script: Script, client: VastClient) -> None:
    # If Vast ignored the label filter, the listing holds other instances; they are not ours.
    script.on(RENT, httpx.ReadTimeout("lost"), RENTED)
    script.on(LIST, listing(5, 6, label="someone else's"))
    assert rent(client) == 901


def test_several_instances_with_the_label_keep_one_and_release_the_rest(
    script: Script, client: VastClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The rent went through more than once: one instance is kept (the one furthest along, else the oldest) and
    the others, which would only bill, are destroyed, with a warning naming each."""
    rows = [{"id": 700, "label": LABEL, "actual_status": "loading", "start_date": 1.8e9, "extra_env": []},
            {"id": 781, "label": LABEL, "actual_status": "running", "start_date": 1.8e9, "extra_env": []},
            {"id": 650, "label": LABEL, "actual_status": "loading", "start_date": 1.8e9, "extra_env": []}]
    script.on(RENT, httpx.ReadTimeout("lost"))
    script.on(LIST, json_reply(200, {"success": True, "next_token": None, "instances": rows}))
    script.on("DELETE /api/v0/instances/650/", json_reply(200, {"success": True}))
    script.on("DELETE /api/v0/instances/700/", json_reply(200, {"success": True}))
    assert rent(client) == 781
    assert len(script.calls("DELETE /api/v0/instances/650/")) == len(script.calls("DELETE /api/v0/instances/700/")) == 1
    assert "instance 650 also carries label" in caplog.text and "keeping 781" in caplog.text
    assert "instance 700 also carries label" in caplog.text


def test_keep_one_prefers_the_instance_furthest_along_then_the_oldest() -> None:
    def row(id_: int, status: str | None) -> Instance:
        return Instance(id=id_, actual_status=status)

    keep, rest = keep_one([row(5, "exited"), row(9, "loading"), row(7, None), row(8, "stopped")])
    assert (keep.id, [i.id for i in rest]) == (7, [9, 8, 5])
    with pytest.raises(ValueError, match="at least one"):
        keep_one([])


def test_check_failing_means_outcome_unknown(script: Script, client: VastClient) -> None:
    script.on(RENT, httpx.ReadTimeout("lost"), RENTED)
    script.on(LIST, json_reply(401, {"error": "auth_error", "msg": "Invalid user key"}))
    with pytest.raises(CreateOutcomeUnknownError) as caught:
        rent(client)
    err = caught.value
    assert (err.label, err.offer_id) == (LABEL, 42)
    assert isinstance(err, TransportError)
    assert "may have happened" in str(err) and "Invalid user key" in str(err)
    assert err.__cause__ is None and err.__suppress_context__
    assert len(script.calls(RENT)) == 1


def test_check_running_out_of_deadline_means_outcome_unknown(
    script: Script, make_client: Callable[..., VastClient], clock: FakeClock
) -> None:
    def slow_timeout(request: httpx.Request) -> httpx.Response:
        clock.now += request.extensions["timeout"]["read"]
        raise httpx.ReadTimeout("no answer", request=request)

    script.on(RENT, slow_timeout)
    script.on(LIST, text_reply(503, "overloaded"))
    client = make_client(deadline=40, timeout=30)
    with pytest.raises(CreateOutcomeUnknownError):
        rent(client)
    assert len(script.calls(RENT)) == 1
    assert clock.now - 1000.0 <= 40


def test_repeated_lost_answers_are_checked_each_time(script: Script, make_client: Callable[..., VastClient]) -> None:
    script.on(RENT, httpx.ReadTimeout("lost"))
    script.on(LIST, listing())
    with pytest.raises(TransportError) as caught:
        rent(make_client(max_attempts=3))
    assert not isinstance(caught.value, CreateOutcomeUnknownError)  # the last check said: not rented
    assert [r.method for r in script.requests] == ["PUT", "GET", "PUT", "GET", "PUT", "GET"]


def test_outcome_unknown_is_logged_as_a_warning(
    script: Script, client: VastClient, caplog: pytest.LogCaptureFixture
) -> None:
    script.on(RENT, httpx.ReadTimeout("lost"))
    script.on(LIST, listing(782))
    rent(client)
    warnings = [r for r in caplog.records if r.name == "vastclient" and r.levelname == "WARNING"]
    assert warnings and "may have happened" in warnings[0].getMessage()
