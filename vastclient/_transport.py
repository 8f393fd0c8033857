"""The only module that touches httpx (with client.py's `transport=` type): one HTTP exchange and its translation.

`Transport.send` is the translation boundary: every httpx exception and every non-2xx status becomes a
`Failure` holding one of our errors, built from plain strings (never chained to the httpx exception,
whose request carries the `Authorization` header) with the API key redacted from any server text.
`Failure` also records what the retry loop needs to know: may we retry, did the server possibly act on
the request (what decides whether a rent may have happened), and did the server say when to come back.

The wire format mirrors the official client (`vastai` 1.9.1, `api/client.py`): query values that are not
strings are JSON-encoded and then `quote_plus`-encoded; bodies are `json.dumps` with its default
separators; the key goes only in `Authorization: Bearer`, never in a URL.

`Transport` composes the two other concerns of a request: when it may leave (`vastclient._pacing`) and whether
and when a failed one is tried again (`vastclient._retry`).
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import re
import ssl
import threading
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any
from urllib.parse import quote_plus

import httpx
from pydantic import SecretStr

from vastclient._pacing import PUBLISHED_LIMITS, Pacer, limit_class
from vastclient._retry import RETRYABLE_STATUSES, Deadline, Failure, RetryPolicy
from vastclient.errors import (
    ApiError,
    AuthError,
    NoSuchInstanceError,
    NotFoundError,
    OfferUnavailableError,
    QuotaExceededError,
    RateLimitedError,
    TransportError,
    UnexpectedResponseError,
    VastError,
)

log = logging.getLogger("vastclient")

_TEXT_LIMIT = 300

_SSL_LOCK = threading.Lock()
_SSL_CONTEXT: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """One verifying SSL context per process: building one loads the CA bundle (~40 ms), which httpx does for
    every `httpx.Client` and which dominated a provider `check` that opened a client per call."""
    global _SSL_CONTEXT
    with _SSL_LOCK:
        if _SSL_CONTEXT is None:
            _SSL_CONTEXT = httpx.create_ssl_context()
        return _SSL_CONTEXT


CLOCK_HEADER = "X-Emulator-Time"
"""Epoch seconds, full precision: the local emulator's virtual clock. Real Vast sends only `Date`."""


def redact(text: str, *secrets: str) -> str:
    """Remove the keys, and anything shaped like a credential, from text a server or library produced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = re.sub(r"(?i)(api_key=)[^&\s\"']+", r"\1***", text)
    return re.sub(r"(?i)(bearer\s+)[^\s\"']+", r"\1***", text)


def query_string(params: Mapping[str, Any]) -> str:
    """The official client's encoding: `k=quote_plus(v if str else json.dumps(v))` joined by `&`."""
    return "&".join(
        f"{key}={quote_plus(value if isinstance(value, str) else json.dumps(value))}" for key, value in params.items()
    )


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def server_time(headers: Mapping[str, str]) -> float | None:
    """Vast's clock when it answered, in epoch seconds: the emulator's precise `X-Emulator-Time` when present,
    else the HTTP `Date` (whole seconds); None when neither is usable."""
    precise = _number(headers.get(CLOCK_HEADER))
    if precise is not None:
        return precise
    date = headers.get("Date")
    if not date:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # RFC 9110 dates are GMT; an unzoned one ("-0000") is taken as such
        parsed = parsed.replace(tzinfo=UTC)
    stamp = parsed.timestamp()
    return stamp if math.isfinite(stamp) else None


class Transport:
    """An `httpx.Client` bound to one base URL and key, with Vast's error and retry semantics."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float,
        retry: RetryPolicy,
        user_agent: str,
        transport: httpx.BaseTransport | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rng: Callable[[], float],
        wall_clock: Callable[[], float],
        pace: bool = False,
    ) -> None:
        self._key = SecretStr(api_key)  # plain only inside the httpx client's headers
        # Keys this client was handed by Vast (`create_api_key`): redacted from every text like its own.
        self._received: list[SecretStr] = []
        self._timeout = timeout
        self.retry = retry
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._wall_clock = wall_clock
        self._closed = False
        # Vast's clock at this thread's most recent response: one client serves a provider's concurrent
        # creates, and each must date its own rent, not whichever response arrived last.
        self._local = threading.local()
        self.pacer = Pacer(clock, sleep, PUBLISHED_LIMITS if pace else None)
        self._http = httpx.Client(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": user_agent,
                "Accept": "application/json",
            },
            timeout=timeout,
            transport=transport,
            verify=shared_ssl_context(),
            # Vast's API answers in place; a redirect is a misconfigured base URL, better surfaced than followed.
            follow_redirects=False,
        )

    @property
    def server_time(self) -> float | None:
        value: float | None = getattr(self._local, "server_time", None)
        return value

    @server_time.setter
    def server_time(self, value: float | None) -> None:
        self._local.server_time = value

    def deadline(self, seconds: float) -> Deadline:
        return Deadline(self._clock, seconds)

    def add_secret(self, secret: str) -> None:
        """Redact `secret` (a key Vast just issued) from everything this client reports from now on."""
        if secret and all(s.get_secret_value() != secret for s in self._received):
            self._received.append(SecretStr(secret))

    def redact(self, text: str) -> str:
        return redact(text, self._key.get_secret_value(), *(s.get_secret_value() for s in self._received))

    def close(self) -> None:
        self._closed = True
        self._http.close()

    # -- one exchange --------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        deadline: Deadline,
        attempt: int,
    ) -> Any:
        """One HTTP exchange. Returns the decoded JSON of a successful response, or a `Failure`."""
        where: dict[str, Any] = {"method": method, "path": path, "attempts": attempt}
        if self._closed:
            return Failure(error=TransportError("the client is closed", **where), retryable=False, acted=False)
        url = f"{path}?{query_string(query)}" if query else path
        timeout = max(0.001, min(self._timeout, deadline.remaining()))
        content = None
        headers = {}
        if method != "GET":
            # Like the official client: POST/PUT/DELETE always carry JSON, `{}` when there is nothing to say.
            content = json.dumps({} if body is None else body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        cls = limit_class(method, path)
        self.pacer.acquire(cls, deadline)
        started = self._clock()
        try:
            response = self._http.request(method, url, content=content, headers=headers, timeout=httpx.Timeout(timeout))
        except httpx.HTTPError as exc:
            failure = self._transport_failure(exc, where)
            log.debug(
                "%s %s -> %s (attempt %d, %.3f s)",
                method,
                path,
                type(exc).__name__,
                attempt,
                self._clock() - started,
            )
            return failure
        except httpx.InvalidURL as exc:
            return Failure(
                error=TransportError(f"invalid URL: {self.redact(str(exc))}", **where),
                retryable=False,
                acted=False,
            )
        log.debug(
            "%s %s -> %d (attempt %d, %.3f s)",
            method,
            path,
            response.status_code,
            attempt,
            self._clock() - started,
        )
        return self._interpret(response, where)

    def _transport_failure(self, exc: httpx.HTTPError, where: dict[str, Any]) -> Failure:
        detail = self.redact(str(exc)) or type(exc).__name__
        # Connect errors and pool timeouts happen before a byte of the request leaves; anything later
        # (read timeout, reset, half-written request) may have reached Vast and been acted upon.
        unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        if isinstance(exc, httpx.TimeoutException):
            message = f"timed out ({type(exc).__name__}): {detail}"
        else:
            message = f"{type(exc).__name__}: {detail}"
        retryable = isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)
        return Failure(error=TransportError(message, **where), retryable=retryable, acted=not unsent)

    def _interpret(self, response: httpx.Response, where: dict[str, Any]) -> Any:
        status = response.status_code
        seen = server_time(response.headers)
        if seen is not None:
            self.server_time = seen
        text = response.text
        try:
            payload: Any = json.loads(text) if text.strip() else None
            is_json = True
        except ValueError:
            payload, is_json = None, False
        if 200 <= status < 300:
            if not is_json:
                unexpected = UnexpectedResponseError(
                    f"expected JSON, got {response.headers.get('content-type', 'no content type')}: {self._clip(text)}",
                    status=status,
                    **where,
                )
                return Failure(error=unexpected, retryable=False, acted=True)
            # A rent that Vast carried out but whose instance starts stopped (a bid that does not win the machine)
            # answers `success: false` beside the new contract: that instance exists and bills, so it is a result.
            if isinstance(payload, dict) and payload.get("success") is False and "new_contract" not in payload:
                code, message = self._code_and_message(payload, text)
                return Failure(error=self._error_for(status, code, message, where), retryable=False, acted=False)
            return payload
        code, message = self._code_and_message(payload if isinstance(payload, dict) else None, text)
        hint = self._wait_hint(response)
        if status == 429 and code == "search_quota_exceeded":
            error: VastError = QuotaExceededError(message, retry_after=hint, status=status, code=code, **where)
            return Failure(error=error, retryable=False, acted=False, wait_hint=hint)
        if status == 429:
            self.pacer.learn(limit_class(where["method"], where["path"]), message)
            error = RateLimitedError(message, retry_after=hint, status=status, code=code, **where)
            return Failure(error=error, retryable=True, acted=False, wait_hint=hint)
        error = self._error_for(status, code, message, where)
        return Failure(
            error=error,
            retryable=status in RETRYABLE_STATUSES,
            acted=status >= 500,
            wait_hint=hint if status in RETRYABLE_STATUSES else None,
        )

    @staticmethod
    def _error_for(status: int, code: str | None, message: str, where: dict[str, Any]) -> VastError:
        mentions = f"{code or ''} {message}"
        kwargs: dict[str, Any] = {"status": status, "code": code, **where}
        if status in (401, 403) or code == "auth_error":
            return AuthError(message, **kwargs)
        # Vast reports a taken offer as 404 invalid_args "error 404/3603: no_such_ask", or 410 no_such_ask.
        if status == 410 or "no_such_ask" in mentions:
            return OfferUnavailableError(message, **kwargs)
        if code == "no_such_instance":
            return NoSuchInstanceError(message, **kwargs)
        if status == 404:
            return NotFoundError(message, **kwargs)
        return ApiError(message, **kwargs)

    def _code_and_message(self, payload: dict[str, Any] | None, text: str) -> tuple[str | None, str]:
        if payload is None:
            message = self._clip(text) or "(empty body)"
            return None, message
        code = payload.get("error")
        code_text = self.redact(str(code)) if isinstance(code, str) and code else None
        for key in ("msg", "message", "detail"):
            value = payload.get(key)
            if value:
                return code_text, self._clip(value if isinstance(value, str) else json.dumps(value))
        return code_text, code_text or self._clip(text)

    def _clip(self, text: str) -> str:
        text = self.redact(text.strip())
        return text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT] + "..."

    def _wait_hint(self, response: httpx.Response) -> float | None:
        """Numeric `Retry-After` seconds, else `X-RateLimit-Reset` (epoch seconds; small values are
        taken as seconds from now, which some proxies send). HTTP-date `Retry-After` is ignored."""
        retry_after = _number(response.headers.get("Retry-After"))
        if retry_after is not None:
            return max(0.0, retry_after)
        reset = _number(response.headers.get("X-RateLimit-Reset"))
        if reset is None:
            return None
        if reset > 1e9:
            return max(0.0, reset - self._wall_clock())
        return max(0.0, reset)

    # -- retries ---------------------------------------------------------------------------------------

    def delay_before_retry(self, failure: Failure, attempt: int, deadline: Deadline) -> float | None:
        return self.retry.delay(failure, attempt, deadline, self._rng)

    def wait(self, seconds: float, failure: Failure) -> None:
        log.debug("retrying %s %s in %.2f s: %s", failure.error.method, failure.error.path, seconds, failure.error)
        self._sleep(seconds)

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        deadline: Deadline,
        repeatable: bool = True,
        unsure: str | None = None,
    ) -> Any:
        """`send` with retries inside `deadline`. `repeatable=False` for a request that must not happen twice
        (a credit transfer, a new key): it is retried only when Vast cannot have acted on it (a 429, a refused
        connection), and a failure after which it may have happened is raised at once, with `unsure` (what to
        check before trying again) as a note. A rent has its own loop: `VastClient.create_instance`."""
        attempt = 0
        while True:
            attempt += 1
            result = self.send(method, path, query=query, body=body, deadline=deadline, attempt=attempt)
            if not isinstance(result, Failure):
                return result
            if not repeatable and result.acted:
                result.error.add_note(unsure or f"{method} {path} may have happened: check before repeating it")
                raise result.error
            delay = self.delay_before_retry(result, attempt, deadline)
            if delay is None:
                raise result.error
            self.wait(delay, result)
