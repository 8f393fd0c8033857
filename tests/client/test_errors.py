"""Every way Vast says no, mapped to one class of the tree, with status, code and message kept."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import httpx
import pytest

from tests.client.conftest import Script, json_reply, text_reply
from vastclient import (
    ApiError,
    AuthError,
    CreateOutcomeUnknownError,
    InvalidRequestError,
    NoSuchInstanceError,
    NotFoundError,
    OfferUnavailableError,
    QuotaExceededError,
    RateLimitedError,
    TransportError,
    UnexpectedResponseError,
    VastClient,
    VastError,
)

USER = "GET /api/v0/users/current"
NO_SUCH_ASK = "error 404/3603: no_such_ask  Instance type by id 7 is not available."


@pytest.mark.parametrize(
    ("reply", "cls", "status", "code", "message"),
    [
        (json_reply(401, {"error": "auth_error", "msg": "Invalid user key"}), AuthError, 401, "auth_error",
         "Invalid user key"),
        (json_reply(403, {"success": False, "error": "forbidden", "msg": "not allowed"}), AuthError, 403,
         "forbidden", "not allowed"),
        (json_reply(404, {"success": False, "error": "invalid_args", "msg": NO_SUCH_ASK}),
         OfferUnavailableError, 404, "invalid_args", NO_SUCH_ASK),
        (json_reply(410, {"error": "no_such_ask"}), OfferUnavailableError, 410, "no_such_ask", "no_such_ask"),
        (json_reply(404, {"success": False, "error": "no_such_instance", "msg": "gone"}), NoSuchInstanceError, 404,
         "no_such_instance", "gone"),
        (json_reply(400, {"error": "invalid_args", "message": "disk too small"}), ApiError, 400, "invalid_args",
         "disk too small"),
        (json_reply(422, {"detail": [{"loc": ["x"]}]}), ApiError, 422, None, '[{"loc": ["x"]}]'),
        (text_reply(500, "Internal Server Error"), ApiError, 500, None, "Internal Server Error"),
        (text_reply(418, ""), ApiError, 418, None, "(empty body)"),
        (json_reply(200, {"success": False, "error": "missing_billing", "msg": "add credit"}), ApiError, 200,
         "missing_billing", "add credit"),
        (json_reply(200, {"success": False, "error": "no_such_instance", "msg": "x"}), NoSuchInstanceError, 200,
         "no_such_instance", "x"),
        (text_reply(200, "<html>proxy login</html>"), UnexpectedResponseError, 200, None, None),
        (json_reply(429, {"success": False, "error": "search_quota_exceeded", "msg": "daily quota"}),
         QuotaExceededError, 429, "search_quota_exceeded", "daily quota"),
    ],
)  # fmt: skip
def test_status_mapping(
    script: Script,
    client: VastClient,
    reply: httpx.Response,
    cls: type[VastError],
    status: int,
    code: str | None,
    message: str | None,
) -> None:
    script.on(USER, reply)
    with pytest.raises(VastError) as caught:
        client.current_user()
    err = caught.value
    assert type(err) is cls
    assert (err.status, err.code) == (status, code)
    if message is not None:
        assert err.message == message
    assert (err.method, err.path) == ("GET", "/api/v0/users/current")
    assert len(script.requests) == 1, "none of these is retried"


def test_plain_text_429_is_a_rate_limit_after_retries(script: Script, client: VastClient) -> None:
    script.on(USER, text_reply(429, "API requests too frequent endpoint threshold=4.5", headers={"Retry-After": "2"}))
    with pytest.raises(RateLimitedError) as caught:
        client.current_user()
    err = caught.value
    assert type(err) is RateLimitedError
    assert err.message == "API requests too frequent endpoint threshold=4.5"
    assert err.retry_after == 2.0
    assert err.attempts == 5 and len(script.requests) == 5


def test_long_messages_are_clipped(script: Script, client: VastClient) -> None:
    script.on(USER, text_reply(400, "x" * 5000))
    with pytest.raises(ApiError) as caught:
        client.current_user()
    assert len(caught.value.message) < 400


def test_str_names_status_code_and_request() -> None:
    err = NotFoundError("gone", status=404, code="no_such_instance", method="GET", path="/api/v0/instances/1/")
    assert str(err) == "HTTP 404 no_such_instance: gone (GET /api/v0/instances/1/)"
    assert str(ApiError("x", status=503, attempts=3)) == "HTTP 503: x (after 3 attempts)"
    assert "NotFoundError('gone'" in repr(err)


@pytest.mark.parametrize(
    "err",
    [
        RateLimitedError("slow down", retry_after=3.5, status=429, method="GET", path="/p", attempts=2),
        QuotaExceededError("quota", retry_after=None, status=429, code="search_quota_exceeded"),
        CreateOutcomeUnknownError("maybe", label="l [vg:s/n]", offer_id=7, method="PUT", path="/api/v0/asks/7/"),
        OfferUnavailableError("gone", status=410, code="no_such_ask"),
        InvalidRequestError("bad label"),
    ],
)
def test_errors_pickle(err: VastError) -> None:
    back = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes
    assert type(back) is type(err)
    assert vars(back) == vars(err)
    assert str(back) == str(err)


def test_hierarchy() -> None:
    assert issubclass(OfferUnavailableError, NotFoundError)
    assert issubclass(QuotaExceededError, RateLimitedError)
    assert issubclass(UnexpectedResponseError, ApiError)
    assert issubclass(CreateOutcomeUnknownError, TransportError)
    assert issubclass(InvalidRequestError, ValueError)
    for cls in (AuthError, NotFoundError, RateLimitedError, ApiError, TransportError, InvalidRequestError):
        assert issubclass(cls, VastError)


def test_invalid_options_are_our_error(make_client: Callable[..., VastClient]) -> None:
    with pytest.raises(InvalidRequestError, match="deadline"):
        make_client(timeout=200, deadline=100)
    with pytest.raises(InvalidRequestError):
        make_client(max_attempts=0)
    with pytest.raises(InvalidRequestError):
        make_client(deadline=0)
