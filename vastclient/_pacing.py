"""Pacing: requests of each Vast rate-limit class leave no faster than Vast accepts them (token buckets).

Vast limits each key per endpoint class (create 4.5/s, show 2/s, ... `PUBLISHED_LIMITS`), and its 429 names the
threshold it enforces (`API requests too frequent endpoint threshold=4.5`). `limit_class` sorts a request into
its class; `Pacer` spaces them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vastclient._retry import Deadline

_THRESHOLD = re.compile(r"threshold\s*=\s*([0-9]+(?:\.[0-9]+)?)")
_INSTANCE_ID_PATH = re.compile(r"^/api/v0/instances/\d+/?$")


def limit_class(method: str, path: str) -> str:
    """Which of Vast's per-endpoint rate limits a request counts against (create, destroy, show, manage, list,
    charges, search, bid (a bid change: 5.5/s in Vast's OpenAPI), or the path itself for endpoints with no
    published limit)."""
    if path.startswith("/api/v0/asks/"):
        return "create"
    if path.startswith("/api/v0/instances/bid_price/"):
        return "bid"
    if _INSTANCE_ID_PATH.match(path):
        return {"GET": "show", "PUT": "manage", "DELETE": "destroy"}.get(method, path)
    if path.startswith("/api/v1/instances") or path.startswith("/api/v0/instances"):
        return "destroy" if method == "DELETE" else "list"
    if path.startswith("/api/v0/charges"):
        return "charges"
    if path.startswith("/api/v0/bundles"):
        return "search"
    return path


_PACING_MARGIN = 1.08
"""Pace a little under a threshold: requests sent 1/rate apart can arrive closer together than that."""
_PUBLISHED_MARGIN = 1.03

PUBLISHED_LIMITS: dict[str, tuple[float, int]] = {
    "create": (4.5, 3), "destroy": (3.0, 2), "show": (2.0, 1), "manage": (1.0, 1), "list": (1.0, 1),
    "charges": (1.0, 1), "search": (10 / 60, 8), "bid": (5.5, 4),
}
"""Vast's published per-key thresholds (requests per second) and, a little under what they allow, the bursts
(search: about ten a minute). A client created with `pace=True` starts from these instead of learning them from
a first 429; the bursts keep a token in hand against requests that arrive closer together than they left."""


@dataclass
class _Bucket:
    rate: float
    burst: float
    tokens: float
    at: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = max(self.at, now)


class Pacer:
    """Token buckets per rate-limit class, so requests leave no faster than Vast accepts them.

    Vast's 429 names the limit it enforces (`API requests too frequent endpoint threshold=4.5`, per key and
    endpoint); after one, requests of that class are paced at that threshold. A client that knows it will
    make many requests (the provider) starts from Vast's published limits (`PUBLISHED_LIMITS`) and so is
    not rejected at all while they hold; other clients pace nothing until told, since most never meet a limit.
    Requests reserve their slot under a lock and sleep outside it: concurrent callers queue in order."""

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None],
                 limits: Mapping[str, tuple[float, int]] | None = None) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        now = clock()
        # Published limits come with a burst kept under Vast's, a token in hand against jitter: a smaller
        # margin on their rate suffices.
        self._buckets = {cls: _Bucket(rate / _PUBLISHED_MARGIN, burst, burst, now)
                         for cls, (rate, burst) in (limits or {}).items()}

    def learn(self, cls: str, message: str) -> None:
        found = _THRESHOLD.search(message)
        if found is None:
            return
        rate = float(found.group(1)) / _PACING_MARGIN
        if rate > 0:
            with self._lock:
                now = self._clock()
                bucket = self._buckets.get(cls)
                if bucket is None:
                    # Vast's bucket for this class is empty right now: the next request waits one interval.
                    self._buckets[cls] = _Bucket(rate, 1.0, 0.0, now)
                    return
                # Already pacing (a jittery arrival got through too early): slow down if Vast's rate is lower,
                # and count the bucket as empty, but keep the slots other callers already hold. Starting a new
                # bucket would hand out those slots again and turn one rejection into a cascade.
                bucket.refill(now)
                bucket.tokens = min(bucket.tokens, 0.0)
                bucket.rate = min(bucket.rate, rate)
                bucket.burst = min(bucket.burst, 1.0)

    def interval(self, cls: str) -> float | None:
        bucket = self._buckets.get(cls)
        return None if bucket is None else 1.0 / bucket.rate

    def acquire(self, cls: str, deadline: Deadline) -> None:
        with self._lock:
            bucket = self._buckets.get(cls)
            if bucket is None:
                return
            bucket.refill(self._clock())
            bucket.tokens -= 1.0
            wait = 0.0 if bucket.tokens >= 0 else -bucket.tokens / bucket.rate
        wait = min(wait, max(0.0, deadline.remaining()))
        if wait > 0:
            self._sleep(wait)
