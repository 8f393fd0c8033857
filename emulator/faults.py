"""Fault injection (LocalStack-style rules) and the request log benchmarks count calls with.

A rule fires for its operation with its probability, at most `count` times, drawn from a seeded RNG so a
run with the same rules and the same calls fails the same calls. Rules live in memory only: a restarted
emulator starts with none, like a fresh test.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict

from emulator.bodies import FaultBody, Phase, ProvisionOutcome

API_OPERATIONS = frozenset({
    "gpu_names", "user", "search", "create", "list", "show", "manage", "bid", "destroy", "charges",
    "instance_filters",
    "team", "roles", "members", "apikeys", "credit", "audit", "machines",
})


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int
    operation: str
    status: int
    body: Any = None
    headers: dict[str, str]
    probability: float
    latency_ms: int
    count: int | None
    phase: Phase
    outcome: ProvisionOutcome | None
    status_msg: str | None
    fired: int = 0

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count


class FaultBook:
    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self._lock = threading.Lock()

    def add(self, body: FaultBody) -> FaultRule:
        if body.operation not in API_OPERATIONS | {"*", "provision"}:
            raise ValueError(f"unknown operation {body.operation!r}; use one of "
                             f"{', '.join(sorted(API_OPERATIONS | {'*', 'provision'}))}")
        with self._lock:
            rule = FaultRule(id=self._next_id, **body.model_dump())
            self._next_id += 1
            self._rules.append(rule)
            return rule.model_copy()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [r.model_copy() for r in self._rules]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._rng = random.Random(self._seed)

    def pick(self, operation: str) -> FaultRule | None:
        """The first live rule for `operation` whose dice roll says fire (counted as fired), else None."""
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or rule.operation not in (operation, "*"):
                    continue
                if rule.operation == "*" and operation == "provision":
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule.model_copy()
        return None


class RequestRecord(BaseModel):
    """One API call as the log keeps it: never the key, never the query string (it may hold `api_key`)."""

    seq: int
    method: str
    path: str
    operation: str
    status: int
    timestamp: float  # virtual clock
    account_id: int | None = None


class RequestLog:
    def __init__(self, limit: int = 200_000) -> None:
        self._records: list[RequestRecord] = []
        self._seq = 0
        self._limit = limit
        self._lock = threading.Lock()

    def add(self, *, method: str, path: str, operation: str, status: int, timestamp: float,
            account_id: int | None) -> None:
        with self._lock:
            self._seq += 1
            self._records.append(RequestRecord(seq=self._seq, method=method, path=path, operation=operation,
                                               status=status, timestamp=timestamp, account_id=account_id))
            if len(self._records) > self._limit:
                del self._records[: len(self._records) - self._limit]

    def records(self, operation: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._records if operation is None or r.operation == operation]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(r.operation for r in self._records))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
