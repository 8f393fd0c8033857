"""Fixtures for the client's unit tests: a scripted Vast (httpx.MockTransport) and a fake clock.

Retries, backoff and deadlines run on `FakeClock`, so a test of a two-minute deadline takes microseconds;
`Script` answers each request from a queue per route and records what was sent.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from vastclient import VastClient

API_KEY = "vk-test-5ecret-0123456789abcdef"
"""Distinctive, so that a leak shows up in any text it reaches."""

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakeClock:
    """Monotonic time that only moves when the client sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.epoch_offset = 1_800_000_000.0 - 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.epoch_offset

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def json_reply(status: int = 200, body: Any = None, *, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps({} if body is None else body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def text_reply(status: int, text: str, *, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=text.encode(), headers={"Content-Type": "text/plain", **(headers or {})})


class Script:
    """Replies queued per "METHOD /path" (the last reply of a route repeats); records every request."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.routes: dict[str, deque[Reply]] = defaultdict(deque)
        self.requests: list[httpx.Request] = []

    def on(self, route: str, *replies: Reply) -> Script:
        self.routes[route].extend(replies)
        return self

    def calls(self, route: str) -> list[httpx.Request]:
        method, _, path = route.partition(" ")
        return [r for r in self.requests if r.method == method and r.url.path == path]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = f"{request.method} {request.url.path}"
        queue = self.routes.get(route)
        if not queue:
            return json_reply(404, {"success": False, "error": "route_not_scripted", "msg": route})
        reply = queue.popleft() if len(queue) > 1 else queue[0]
        if isinstance(reply, Exception):
            if isinstance(reply, httpx.RequestError):
                reply.request = request
            raise reply
        if callable(reply) and not isinstance(reply, httpx.Response):
            return reply(request)
        return reply


def query_of(request: httpx.Request) -> dict[str, Any]:
    """Decode a request's query the way Vast does: each value JSON if it parses, else the string."""
    out: dict[str, Any] = {}
    for key, values in parse_qs(urlsplit(str(request.url)).query, keep_blank_values=True).items():
        try:
            out[key] = json.loads(values[0])
        except ValueError:
            out[key] = values[0]
    return out


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def script(clock: FakeClock) -> Script:
    return Script(clock)


@pytest.fixture
def make_client(script: Script, clock: FakeClock) -> Iterator[Callable[..., VastClient]]:
    made: list[VastClient] = []

    def make(**options: Any) -> VastClient:
        options.setdefault("api_key", API_KEY)
        options.setdefault("base_url", "https://vast.test")
        client = VastClient(
            transport=httpx.MockTransport(script),
            clock=clock.monotonic,
            sleep=clock.sleep,
            rng=lambda: 0.5,
            wall_clock=clock.wall,
            **options,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., VastClient]) -> VastClient:
    return make_client()
