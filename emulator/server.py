"""The HTTP server: a standard-library ThreadingHTTPServer in front of `EmulatorApp`, plus `EmulatorServer`,
the in-process handle tests use (`start()` / `stop()` / `url` / `market`, also a context manager).

`EmulatorApp.handle` is the whole request pipeline, independent of sockets: route, (API only) latency,
authenticate the key (and its IP allow-list), rate-limit per key, check the key's permissions for the route's
endpoint, fault rules, handler, audit log, request log. Keys are read from `Authorization: Bearer`
or `?api_key=` and never logged: the request log and the server log carry the path without its query.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import socket
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from emulator import catalogue, persistence
from emulator.access import Caller, authorize
from emulator.bodies import AccountBody
from emulator.errors import VastError
from emulator.models import Account, EmulatorConfig, MarketBackend
from emulator.responses import Call, Request, Response, error_response, fault_response
from emulator.urls import Route, match

log = logging.getLogger("emulator")

MAX_BODY = 10 * 1024 * 1024
CLOCK_HEADER = "X-Emulator-Time"
"""Every response carries the virtual clock twice: in `Date` (HTTP's format, whole seconds, as Vast sends it) and
here as epoch seconds with full precision, which clients prefer when present (a whole second at $30/h is
almost a cent, and the truncation is biased, so a month of events would drift past a cent)."""


def api_key_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.query.get("api_key") or None


class EmulatorApp:
    def __init__(self, market: MarketBackend, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.market = market
        self._sleep = sleep

    def handle(self, request: Request) -> Response:
        try:
            route, params = match(request.method, request.path)
        except VastError as exc:
            return error_response(exc)
        if route.control:
            return self._run(route, Call(self.market, request, params))
        caller, response = self._api(route, params, request)
        self.market.requests.add(method=request.method, path=request.path, operation=route.operation,
                                 status=response.status, timestamp=self.market.clock.now(),
                                 account_id=caller.account.id if caller is not None else None)
        return response

    def _api(self, route: Route, params: dict[str, str], request: Request) -> tuple[Caller | None, Response]:
        market = self.market
        config = market.config
        caller: Caller | None = None
        call = Call(market, request, params)
        try:
            if config.latency_ms:
                self._sleep(config.latency_ms / 1000)
            if route.auth:
                caller = call.caller = market.identify(api_key_of(request), request.client_ip)
            if config.rate_limits and caller is not None:
                market.limiter.check(f"key:{caller.key.id}", route.operation, market.clock.now())
            if caller is not None and route.endpoint is not None:
                authorize(caller, route.endpoint, call.request_params)
        except VastError as exc:
            return caller, error_response(exc)
        fault = market.faults.pick(route.operation)
        if fault is not None and fault.phase == "before":
            if fault.latency_ms:
                self._sleep(fault.latency_ms / 1000)
            return caller, fault_response(fault)
        response = self._run(route, call)
        endpoint = route.endpoint
        if caller is not None and endpoint is not None and endpoint.audited is not None and \
                200 <= response.status < 300:
            market.record_audit(caller, endpoint, call.request_params(), response.audit)
        if fault is not None:  # phase "after": the operation happened, the client is told it failed
            if fault.latency_ms:
                self._sleep(fault.latency_ms / 1000)
            response = fault_response(fault)
        return caller, response

    def _run(self, route: Route, call: Call) -> Response:
        try:
            return route.handler(call)
        except VastError as exc:
            return error_response(exc)
        except Exception:  # a bug, never the client's fault: log it, answer without a traceback
            log.exception("emulator error in %s %s", call.request.method, call.request.path)
            return Response(status=500, payload={"success": False, "error": "internal_error",
                                                 "msg": "the emulator failed on this request (see its log)"})


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: EmulatorApp) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on keep-alive clients, so a stopped emulator stops answering on pooled connections too."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vastguard-emulator"
    sys_version = ""
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client (httpx) waits ~40 ms for
    # the delayed ACK on every response. urllib closes each connection and never noticed.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return self.server_version
    timeout = 30  # idle keep-alive connections are closed, so stop() does not wait on them
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            body = self._read_body()
        except ValueError:
            self._write(Response(status=413, payload={"success": False, "error": "invalid_request",
                                                      "msg": "request body unreadable or over 10 MB"}))
            self.close_connection = True
            return
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(method=method, path=url.path, query=query, headers=headers, body=body,
                          client_ip=str(self.client_address[0]))
        response = self.server.app.handle(request)
        log.info("%s %s -> %s", method, url.path, response.status or "dropped")
        if response.drop:
            self.close_connection = True
            return
        self._write(response)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """`Date` from the virtual clock: Vast bills by its own clock, and clients read it from here."""
        when = self.server.app.market.clock.now() if timestamp is None else timestamp
        return email.utils.formatdate(when, usegmt=True)

    def _write(self, response: Response) -> None:
        data, content_type = response.encode()
        now = self.server.app.market.clock.now()
        self.send_response_only(response.status)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string(now))
        self.send_header(CLOCK_HEADER, repr(now))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    # BaseHTTPRequestHandler logs the raw request line, query string (and so `?api_key=`) included.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


class EmulatorServer:
    """The emulator in-process: `with EmulatorServer(port=0) as srv: ... srv.url ... srv.market`.

    Settings left as None come from a restored state file when there is one, else from the defaults; a
    value given here always wins. `reset` returns the market to these settings.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, seed: int = 0,
                 offers: int = catalogue.DEFAULT_OFFERS, state_file: str | Path | None = None,
                 provision_delay: float | None = None, rate_limits: bool | None = None,
                 latency_ms: int | None = None, strict_search: bool | None = None, freeze_clock: bool = False,
                 flush_interval: float = 0.25) -> None:
        overrides: dict[str, Any] = {k: v for k, v in {
            "provision_delay": provision_delay, "rate_limits": rate_limits, "latency_ms": latency_ms,
            "strict_search": strict_search}.items() if v is not None}
        self.state_file = Path(state_file) if state_file is not None else None
        restored = persistence.load(self.state_file) if self.state_file is not None else None
        if restored is not None:
            restored.config = restored.config.model_copy(update=overrides)
            self.market = MarketBackend(restored, defaults=EmulatorConfig(**overrides))
        else:
            self.market = MarketBackend.fresh(seed=seed, offers=offers, config=EmulatorConfig(**overrides))
        if freeze_clock:
            self.market.clock.freeze()
        self.restored = restored is not None
        self._address = (host, port)
        self._flush_interval = flush_interval
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._persister: persistence.Persister | None = None

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer(self._address, EmulatorApp(self.market))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="emulator-http", daemon=True)
        self._thread.start()
        if self.state_file is not None:
            self._persister = persistence.Persister(self.market, self.state_file, interval=self._flush_interval)
            self._persister.flush(force=True)
            self._persister.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            if self._thread is not None:
                self._thread.join()
            self._httpd = None
            self._thread = None
        if self._persister is not None:
            self._persister.stop()
            self._persister = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the emulator is not running: call start() first")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._address[0]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        return f"http://{shown}:{self.port}"

    def create_account(self, *, api_key: str, balance: float | int | str | Decimal = 100,
                       username: str | None = None, email: str | None = None) -> Account:
        """What `POST /_emulator/accounts` does, in-process."""
        body = AccountBody(api_key=api_key, balance=Decimal(str(balance)), username=username, email=email)
        return self.market.create_account(body).account
