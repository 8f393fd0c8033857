"""Retries: which failures are worth another attempt, how long to wait, and the one deadline an operation has.

`Transport.send` (vastclient/_transport.py) turns every exchange into a decoded payload or a `Failure`; this
module decides what happens next: exponential backoff with jitter, never sooner than the server asked
(`Retry-After` / `X-RateLimit-Reset`), never past the operation's `Deadline`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vastclient.errors import VastError

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""As the official client: rate limits and gateway errors that usually clear. Never 500 or other 4xx."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between half and all of
    `min(max_backoff, initial_backoff * 2**(n-1))`, or longer if the server said so."""

    max_attempts: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError(f"unusable retry policy {self!r}")

    def delay(self, failure: Failure, attempt: int, deadline: Deadline, rng: Callable[[], float]) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up (not retryable, attempts
        used up, or the wait would end past the deadline). Records why on the error."""
        if not failure.retryable:
            return None
        if attempt >= self.max_attempts:
            failure.error.add_note(f"gave up after {attempt} attempts")
            return None
        backoff = min(self.max_backoff, self.initial_backoff * 2.0 ** (attempt - 1))
        delay = backoff / 2 + rng() * backoff / 2
        if failure.wait_hint is not None:
            delay = max(delay, failure.wait_hint)
        if delay >= deadline.remaining():
            failure.error.add_note(
                f"gave up after {attempt} attempts: waiting {delay:.1f} s would pass the "
                f"{deadline.seconds:g} s deadline"
            )
            return None
        return delay


class Deadline:
    """One operation's time budget on the injected monotonic clock, shared by all its requests."""

    def __init__(self, clock: Callable[[], float], seconds: float) -> None:
        self._clock = clock
        self.seconds = seconds
        self.started = clock()
        self.expires = self.started + seconds

    def remaining(self) -> float:
        return self.expires - self._clock()

    def elapsed(self) -> float:
        return self._clock() - self.started


@dataclass(frozen=True, kw_only=True)
class Failure:
    """One failed exchange, already translated. `acted` is True when the server may have carried the
    request out (the response was lost, or a gateway answered 5xx after forwarding it)."""

    error: VastError
    retryable: bool
    acted: bool
    wait_hint: float | None = None
