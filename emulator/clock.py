"""The virtual clock every time-dependent part of the emulator reads (lifecycle, billing, rate limits).

By default it follows real time, so a person or a benchmark sees instances boot and bills grow as usual.
Tests freeze it and move it by hand: an instance that takes ten minutes to provision is running after
`advance(600)`, with no sleeping, and a day of billing is one call. The clock is the only source of "now"
in the backend, which is what makes billing exact: every charge is rate x (t1 - t0) for times this clock
produced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict


class ClockState(BaseModel):
    """What a restart needs to resume the same virtual time: the offset from real time while running,
    or the instant it is frozen at."""

    model_config = ConfigDict(extra="forbid")

    offset: float = 0.0
    frozen_at: float | None = None


class VirtualClock:
    def __init__(self, state: ClockState | None = None, *, real: Callable[[], float] = time.time) -> None:
        self._real = real
        self._lock = threading.Lock()
        self._state = state.model_copy() if state is not None else ClockState()

    def now(self) -> float:
        with self._lock:
            if self._state.frozen_at is not None:
                return self._state.frozen_at
            return self._real() + self._state.offset

    @property
    def frozen(self) -> bool:
        return self._state.frozen_at is not None

    def freeze(self) -> float:
        with self._lock:
            if self._state.frozen_at is None:
                self._state.frozen_at = self._real() + self._state.offset
            return self._state.frozen_at

    def unfreeze(self) -> float:
        """Resume following real time from the frozen instant (no jump)."""
        with self._lock:
            if self._state.frozen_at is not None:
                self._state.offset = self._state.frozen_at - self._real()
                self._state.frozen_at = None
            return self._real() + self._state.offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            if self._state.frozen_at is not None:
                self._state.frozen_at += seconds
                return self._state.frozen_at
            self._state.offset += seconds
            return self._real() + self._state.offset

    def set(self, when: float) -> float:
        with self._lock:
            if self._state.frozen_at is not None:
                self._state.frozen_at = when
            else:
                self._state.offset = when - self._real()
            return when

    def reset(self) -> float:
        """Follow real time again, with no offset."""
        with self._lock:
            self._state = ClockState()
            return self._real()

    def snapshot(self) -> ClockState:
        with self._lock:
            return self._state.model_copy()
