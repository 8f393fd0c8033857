"""Per-key, per-endpoint rate limits with Vast's published thresholds (token buckets on the virtual clock).

Vast throttles each endpoint for each key separately and says so in plain text:
`API requests too frequent endpoint threshold=4.5`. The buckets here hold `burst` tokens and refill at
`rate` per second of *virtual* time, so a test with a frozen clock gets exactly `burst` calls before the
429 and a refill only when it advances the clock. Off by default (most tests and the demo do not want
them); `/_emulator/config {"rate_limits": true}` or `--rate-limits` turns them on.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from emulator.errors import RateLimited


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: float
    threshold: str  # as Vast prints it


LIMITS: dict[str, Limit] = {
    "create": Limit(4.5, 4.5, "4.5"),
    "destroy": Limit(3.0, 3.0, "3.0"),
    "show": Limit(2.0, 2.0, "2.0"),
    "manage": Limit(1.0, 1.0, "1.0"),
    "list": Limit(1.0, 1.0, "1.0"),
    "charges": Limit(1.0, 1.0, "1.0"),
    "bid": Limit(5.5, 5.5, "5.5"),  # change bid: the backend's x-rateLimit
    # "about 10/minute": a burst of ten, then one every six seconds.
    "search": Limit(10 / 60, 10.0, "0.167"),
}


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, limits: dict[str, Limit] | None = None) -> None:
        self._limits = dict(LIMITS if limits is None else limits)
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, caller: str, operation: str, now: float) -> None:
        """Take a token for (caller, operation) or raise RateLimited with the wait until the next one."""
        limit = self._limits.get(operation)
        if limit is None:
            return
        with self._lock:
            bucket = self._buckets.get((caller, operation))
            if bucket is None:
                bucket = self._buckets[(caller, operation)] = _Bucket(limit.burst, now)
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(limit.burst, bucket.tokens + elapsed * limit.rate)
            bucket.at = max(bucket.at, now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / limit.rate
        raise RateLimited(limit.threshold, math.ceil(wait * 1000) / 1000)

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
