"""Retries: which failures, how long to wait, and the deadline over all of it (on a fake clock)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from tests.client.conftest import FakeClock, Script, json_reply, text_reply
from vastclient import (
    ApiError,
    AuthError,
    NotFoundError,
    QuotaExceededError,
    RateLimitedError,
    TransportError,
    VastClient,
)

USER = "GET /api/v0/users/current"
OK = json_reply(200, {"id": 7})


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_transient_statuses_are_retried_with_backoff(
    script: Script, client: VastClient, clock: FakeClock, status: int
) -> None:
    script.on(USER, text_reply(status, "busy"), text_reply(status, "busy"), OK)
    assert client.current_user().id == 7
    assert len(script.requests) == 3
    # rng is 0.5: attempt n waits 3/4 of min(20, 0.5 * 2**(n-1))
    assert clock.sleeps == [0.375, 0.75]


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow read"),
        httpx.ReadError("reset by peer"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.PoolTimeout("pool"),
    ],
)
def test_connection_errors_and_timeouts_are_retried(script: Script, client: VastClient, exc: Exception) -> None:
    script.on(USER, exc, OK)
    assert client.current_user().id == 7
    assert len(script.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 422, 500, 501])
def test_other_failures_are_not_retried(script: Script, client: VastClient, clock: FakeClock, status: int) -> None:
    script.on(USER, json_reply(status, {"error": "nope"}), OK)
    with pytest.raises((ApiError, AuthError, NotFoundError)):
        client.current_user()
    assert len(script.requests) == 1 and clock.sleeps == []


def test_unsupported_protocol_is_not_retried(script: Script, client: VastClient) -> None:
    script.on(USER, httpx.UnsupportedProtocol("ftp?"), OK)
    with pytest.raises(TransportError):
        client.current_user()
    assert len(script.requests) == 1


def test_search_quota_is_never_retried(script: Script, client: VastClient, clock: FakeClock) -> None:
    reset = clock.wall() + 3600
    script.on(
        USER,
        json_reply(429, {"error": "search_quota_exceeded", "msg": "quota"}, headers={"X-RateLimit-Reset": str(reset)}),
        OK,
    )
    with pytest.raises(QuotaExceededError) as caught:
        client.current_user()
    assert caught.value.retry_after == pytest.approx(3600)
    assert len(script.requests) == 1 and clock.sleeps == []


def test_retry_after_is_honoured(script: Script, client: VastClient, clock: FakeClock) -> None:
    script.on(USER, text_reply(429, "slow", headers={"Retry-After": "7"}), OK)
    client.current_user()
    assert clock.sleeps == [7.0]


def test_retry_after_never_shortens_the_backoff(script: Script, client: VastClient, clock: FakeClock) -> None:
    script.on(USER, text_reply(503, "x", headers={"Retry-After": "0"}), text_reply(503, "x"), OK)
    client.current_user()
    assert clock.sleeps == [0.375, 0.75]


def test_rate_limit_reset_epoch_is_honoured(script: Script, client: VastClient, clock: FakeClock) -> None:
    script.on(USER, text_reply(429, "slow", headers={"X-RateLimit-Reset": str(clock.wall() + 12.5)}), OK)
    client.current_user()
    assert clock.sleeps == [pytest.approx(12.5)]


def test_rate_limit_reset_in_the_past_means_now(script: Script, client: VastClient, clock: FakeClock) -> None:
    script.on(USER, text_reply(429, "slow", headers={"X-RateLimit-Reset": str(clock.wall() - 30)}), OK)
    client.current_user()
    assert clock.sleeps == [0.375]


def test_http_date_retry_after_falls_back_to_backoff(script: Script, client: VastClient, clock: FakeClock) -> None:
    script.on(USER, text_reply(503, "x", headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}), OK)
    client.current_user()
    assert clock.sleeps == [0.375]


def test_attempts_are_bounded(script: Script, make_client: Callable[..., VastClient], clock: FakeClock) -> None:
    script.on(USER, text_reply(502, "bad gateway"))
    with pytest.raises(ApiError) as caught:
        make_client(max_attempts=3).current_user()
    assert len(script.requests) == 3
    assert caught.value.status == 502 and caught.value.attempts == 3
    assert "gave up after 3 attempts" in caught.value.__notes__[0]


def test_transport_errors_surface_after_the_last_attempt(script: Script, client: VastClient) -> None:
    script.on(USER, httpx.ReadTimeout("too slow"))
    with pytest.raises(TransportError) as caught:
        client.current_user()
    assert "timed out" in caught.value.message
    assert caught.value.attempts == 5 and len(script.requests) == 5


def test_backoff_grows_to_its_cap_with_jitter(script: Script, clock: FakeClock) -> None:
    script.on(USER, text_reply(503, "x"))
    draws = iter([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    client = VastClient(
        api_key="k",
        base_url="https://vast.test",
        transport=httpx.MockTransport(script),
        clock=clock.monotonic,
        sleep=clock.sleep,
        rng=lambda: next(draws),
        max_attempts=8,
        initial_backoff=1,
        max_backoff=8,
        deadline=1000,
    )
    with pytest.raises(ApiError):
        client.current_user()
    # ceilings 1, 2, 4, 8, 8, 8, 8; each wait is between half the ceiling and all of it
    assert clock.sleeps == [0.5, 2.0, 2.0, 8.0, 4.0, 8.0, 4.0]


def test_a_wait_past_the_deadline_is_not_taken(
    script: Script, make_client: Callable[..., VastClient], clock: FakeClock
) -> None:
    script.on(USER, text_reply(429, "slow", headers={"Retry-After": "200"}), OK)
    with pytest.raises(RateLimitedError) as caught:
        make_client(deadline=120).current_user()
    assert caught.value.retry_after == 200
    assert len(script.requests) == 1 and clock.sleeps == []
    assert "deadline" in caught.value.__notes__[0]


def test_slow_answers_use_up_the_deadline(
    script: Script, make_client: Callable[..., VastClient], clock: FakeClock
) -> None:
    def slow_503(request: httpx.Request) -> httpx.Response:
        budget = request.extensions["timeout"]["read"]
        if budget < 25:  # what a real socket would do: give up at the request's timeout
            clock.now += budget
            raise httpx.ReadTimeout("timed out", request=request)
        clock.now += 25
        return text_reply(503, "overloaded")

    script.on(USER, slow_503)
    started = clock.now
    with pytest.raises(TransportError, match="timed out"):
        make_client(deadline=60, timeout=30, max_attempts=100).current_user()
    # 25 s, wait, 25 s, wait, then the ~9 s left: never past the deadline
    assert len(script.requests) == 3
    assert clock.now - started == pytest.approx(60)


def test_each_request_gets_at_most_what_is_left_of_the_deadline(
    script: Script, make_client: Callable[..., VastClient], clock: FakeClock
) -> None:
    def slow_503(request: httpx.Request) -> httpx.Response:
        clock.now += 40
        return text_reply(503, "overloaded")

    script.on(USER, slow_503, OK)
    make_client(deadline=60, timeout=30).current_user()
    timeouts = [r.extensions["timeout"]["read"] for r in script.requests]
    assert timeouts[0] == 30
    assert timeouts[1] == pytest.approx(60 - 40 - 0.375)


def test_each_request_is_logged_at_debug(script: Script, client: VastClient, caplog: pytest.LogCaptureFixture) -> None:
    script.on(USER, text_reply(503, "busy"), httpx.ReadTimeout("slow"), OK)
    with caplog.at_level(logging.DEBUG, logger="vastclient"):
        client.current_user()
    lines = [r.getMessage() for r in caplog.records if r.name == "vastclient"]
    assert "GET /api/v0/users/current -> 503 (attempt 1, 0.000 s)" in lines
    assert "GET /api/v0/users/current -> ReadTimeout (attempt 2, 0.000 s)" in lines
    assert "GET /api/v0/users/current -> 200 (attempt 3, 0.000 s)" in lines
    assert any(line.startswith("retrying GET /api/v0/users/current in 0.38 s") for line in lines)
