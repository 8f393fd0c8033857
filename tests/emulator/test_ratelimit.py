"""Per-key, per-endpoint rate limits with Vast's thresholds, on the virtual clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emulator import EmulatorServer
from emulator.errors import RateLimited
from emulator.ratelimit import LIMITS, RateLimiter
from emulator.testing import Control, EmulatorAccount, http


@pytest.mark.parametrize(("operation", "burst", "threshold"), [
    ("create", 4, "4.5"), ("destroy", 3, "3.0"), ("show", 2, "2.0"), ("manage", 1, "1.0"),
    ("list", 1, "1.0"), ("charges", 1, "1.0"), ("search", 10, "0.167"),
])
def test_published_thresholds(operation: str, burst: int, threshold: str) -> None:
    limiter = RateLimiter()
    for _ in range(burst):
        limiter.check("k", operation, 100.0)
    with pytest.raises(RateLimited) as err:
        limiter.check("k", operation, 100.0)
    assert err.value.msg == f"API requests too frequent endpoint threshold={threshold}"
    limit = LIMITS[operation]
    # one token back after 1/rate seconds of (virtual) time, not before
    limiter.check("k", operation, 100.0 + (1 - (limit.burst - burst)) / limit.rate + 1e-9)
    with pytest.raises(RateLimited):
        limiter.check("k", operation, 100.0 + (1 - (limit.burst - burst)) / limit.rate + 1e-9)


def test_buckets_are_per_key_and_per_operation() -> None:
    limiter = RateLimiter()
    limiter.check("a", "manage", 0.0)
    with pytest.raises(RateLimited):
        limiter.check("a", "manage", 0.0)
    limiter.check("b", "manage", 0.0)
    limiter.check("a", "list", 0.0)
    limiter.check("a", "user", 0.0)  # not limited at all
    limiter.check("a", "user", 0.0)


def test_off_by_default_then_429_plain_text_over_http(emulator: EmulatorServer,
                                                      emulator_account: Callable[..., EmulatorAccount]) -> None:
    acct, other = emulator_account(), emulator_account()
    control = Control(emulator.url)
    control.freeze()
    for _ in range(5):
        assert http(emulator.url, "GET", "/api/v1/instances/", key=acct.api_key).status == 200
    control.config(rate_limits=True)
    assert http(emulator.url, "GET", "/api/v1/instances/", key=acct.api_key).status == 200
    limited = http(emulator.url, "GET", "/api/v1/instances/", key=acct.api_key)
    assert limited.status == 429
    assert limited.text == "API requests too frequent endpoint threshold=1.0"
    assert limited.content_type.startswith("text/plain")
    assert float(limited.headers["retry-after"]) == pytest.approx(1.0)
    assert http(emulator.url, "GET", "/api/v1/instances/", key=other.api_key).status == 200  # another key
    assert http(emulator.url, "GET", "/api/v0/instances/1/", key=acct.api_key).status == 200  # another endpoint
    control.advance(1.0)
    assert http(emulator.url, "GET", "/api/v1/instances/", key=acct.api_key).status == 200
    statuses = [r["status"] for r in control.requests("list")["requests"]]
    assert statuses.count(429) == 1
