"""The API key never leaves the Authorization header: not in URLs, messages, reprs, logs or exception chains.

Checked twice: against a scripted Vast that echoes the key back in every way a server could, and over real
sockets (so httpx's and httpcore's own exceptions and DEBUG logs are in play) against a hostile server.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.client.conftest import API_KEY, Script, json_reply, text_reply
from vastclient import MissingApiKeyError, OfferQuery, VastClient, VastError
from vastclient.errors import CreateOutcomeUnknownError


def assert_clean(err: BaseException) -> None:
    """No trace of the key anywhere a person or a log shipper could see, and no httpx object in reach."""
    seen: set[int] = set()
    link: BaseException | None = err
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        assert isinstance(link, VastError), f"{type(link)} in the chain of {err!r}"
        for text in (str(link), repr(link), *(getattr(link, "__notes__", None) or [])):
            assert API_KEY not in text
        assert API_KEY not in json.dumps({k: str(v) for k, v in vars(link).items()})
        link = link.__cause__ or link.__context__
    rendered = "".join(traceback.format_exception(err))
    assert API_KEY not in rendered
    assert "httpx." not in rendered.split("Traceback")[-1].splitlines()[-1]


def assert_logs_clean(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "expected DEBUG logging to have run"
    assert API_KEY not in caplog.text
    for record in caplog.records:
        assert API_KEY not in record.getMessage()
        assert not re.search(r"api_key=(?!\*\*\*)", record.getMessage()), record.getMessage()


# -- scripted: the server echoes the key ---------------------------------------------------------------------

ECHOES = [
    json_reply(401, {"error": "auth_error", "msg": f"Invalid user key {API_KEY}"}),
    json_reply(400, {"error": f"bad_key_{API_KEY}", "detail": f"key={API_KEY}"}),
    text_reply(500, f"Traceback ... headers={{'Authorization': 'Bearer {API_KEY}'}} url=/x?api_key={API_KEY}"),
    text_reply(429, f"too frequent for key {API_KEY}"),
    json_reply(429, {"error": "search_quota_exceeded", "msg": f"quota for {API_KEY}"}),
    json_reply(200, {"success": False, "error": "missing_billing", "message": API_KEY}),
    text_reply(200, f"<html>{API_KEY}</html>"),
    httpx.ConnectError(f"failed to connect with Authorization: Bearer {API_KEY}"),
    httpx.ReadTimeout(f"timed out: {API_KEY}"),
]


@pytest.mark.parametrize("reply", ECHOES)
def test_errors_redact_echoed_keys(
    script: Script, client: VastClient, reply: httpx.Response | Exception, caplog: pytest.LogCaptureFixture
) -> None:
    script.on("GET /api/v0/users/current", reply)
    with caplog.at_level(logging.DEBUG), pytest.raises(VastError) as caught:
        client.current_user()
    assert_clean(caught.value)
    assert_logs_clean(caplog)


def test_create_outcome_unknown_is_clean(script: Script, client: VastClient, caplog: pytest.LogCaptureFixture) -> None:
    script.on("PUT /api/v0/asks/42/", httpx.ReadTimeout(f"lost {API_KEY}"))
    script.on("GET /api/v1/instances/", json_reply(401, {"error": "auth_error", "msg": f"Invalid user key {API_KEY}"}))
    with caplog.at_level(logging.DEBUG), pytest.raises(CreateOutcomeUnknownError) as caught:
        client.create_instance(42, image="img", disk_gb=10, label="l")
    assert_clean(caught.value)
    assert_logs_clean(caplog)


def test_the_key_only_travels_as_a_bearer_header(script: Script, client: VastClient) -> None:
    script.on("GET /api/v0/users/current", json_reply(200, {"id": 1, "api_key": API_KEY}))
    script.on("GET /api/v1/instances/", json_reply(200, {"instances": [], "next_token": None}))
    script.on("POST /api/v0/bundles/", json_reply(200, {"offers": []}))
    user = client.current_user()
    client.list_instances(labels=["x"])
    client.search_offers(OfferQuery())
    assert API_KEY not in repr(user)
    for request in script.requests:
        assert API_KEY not in str(request.url)
        assert API_KEY not in request.content.decode()
        assert request.headers["Authorization"] == f"Bearer {API_KEY}"


def test_client_repr_hides_the_key(client: VastClient) -> None:
    assert API_KEY not in repr(client) + str(client)
    assert "***" in repr(client)


def test_missing_key_error_is_helpful_and_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    with pytest.raises(MissingApiKeyError) as caught:
        VastClient()
    assert_clean(caught.value)


# -- real sockets: httpx's own exceptions and logs ------------------------------------------------------------


class Hostile(BaseHTTPRequestHandler):
    """Echoes the Authorization header back, stalls, or hangs up, depending on the path."""

    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        auth = self.headers.get("Authorization", "")
        if self.path.startswith("/api/v0/users/current"):
            self._send(401, json.dumps({"error": "auth_error", "msg": f"Invalid user key: {auth}"}).encode())
        elif self.path.startswith("/api/v0/instances/1/"):
            time.sleep(0.6)  # longer than the client's timeout
            self._send(200, b"{}")
        elif self.path.startswith("/api/v0/asks/"):
            self.close_connection = True  # hang up without an answer: the rent's outcome is unknown
            self.connection.shutdown(socket.SHUT_RDWR)
        elif self.path.startswith("/api/v1/instances/"):
            self._send(503, f"upstream rejected {auth} at /x?api_key={auth[7:]}".encode(), "text/plain")
        else:
            self._send(500, f"echo {auth}".encode(), "text/plain")

    do_GET = do_PUT = do_POST = do_DELETE = _route

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def real_client() -> Iterator[Callable[[str], VastClient]]:
    made: list[VastClient] = []

    def make(url: str) -> VastClient:
        client = VastClient(
            api_key=API_KEY, base_url=url, timeout=0.3, deadline=5, max_attempts=2, sleep=lambda _s: None
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda c: c.current_user(), id="401-echoing-the-header"),
        pytest.param(lambda c: c.get_instance(1), id="read-timeout"),
        pytest.param(lambda c: c.list_instances(), id="503-echoing-the-header"),
        pytest.param(lambda c: c.create_instance(42, image="img", disk_gb=10, label="l"), id="hang-up-on-rent"),
        pytest.param(lambda c: c.gpu_names(), id="500-echo"),
    ],
)
def test_real_http_failures_are_clean(
    hostile_url: str,
    real_client: Callable[[str], VastClient],
    caplog: pytest.LogCaptureFixture,
    operation: Callable[[VastClient], object],
) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(VastError) as caught:
        operation(real_client(hostile_url))
    assert_clean(caught.value)
    assert_logs_clean(caplog)
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records), "httpx's logs were in play"


def test_connection_refused_is_clean(
    real_client: Callable[[str], VastClient], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(VastError) as caught:
        real_client(f"http://127.0.0.1:{closed_port()}").current_user()
    assert_clean(caught.value)
    assert_logs_clean(caplog)
