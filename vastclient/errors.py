"""Every failure the Vast.ai client lets out, as one tree.

    VastError                       anything below; .status, .code, .message, .method, .path, .attempts
    ├── InvalidRequestError         (also a ValueError) we refused to send it: a label over 256 chars, ...
    ├── AuthError                   401 / 403: the key is wrong, revoked, or lacks the permission
    │   └── MissingApiKeyError      no key configured at all; nothing was sent
    ├── NotFoundError               404 (from Vast, or from a proxy or gateway in front of it)
    │   ├── NoSuchInstanceError     404 no_such_instance: Vast's own word that it does not exist
    │   └── OfferUnavailableError   404 no_such_ask / 410: someone else rented the offer first
    ├── RateLimitedError            429 still there when retries or the deadline ran out; .retry_after
    │   └── QuotaExceededError      429 search_quota_exceeded: a daily quota, never retried
    ├── ApiError                    any other 4xx / 5xx, or a 2xx saying {"success": false}
    │   └── UnexpectedResponseError a 2xx that is not the JSON shape we rely on
    └── TransportError              connection refused / reset / timed out, still so after retries
        └── CreateOutcomeUnknownError  a rent was sent, its outcome is unknown, and the check by
                                       label could not settle it either: the instance may exist

Why a tree of our own: the rest of vastguard (provider, policies, reports) never imports httpx, so it
must be able to tell "offer gone, pick another" from "key revoked" from "try again later" without
knowing the transport. The translation from httpx and from HTTP statuses happens in exactly one place
(`vastclient._transport.Transport.send`); nothing else in the package catches httpx exceptions.

Why `raise ... from None` there: an httpx exception holds the request, and the request holds the
`Authorization` header. Chaining it would put the API key one `__cause__` / `__context__` away from any
traceback printer, so errors are rebuilt from plain strings, with the key redacted from any text the
server echoed back.

`code` is Vast's machine-readable `error` field (`no_such_ask`, `auth_error`, `invalid_args`, ...);
`message` is its human text, from `msg`, `message` or `detail`, or the plain-text body (429s are often
plain text: `API requests too frequent endpoint threshold=4.5`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "AuthError",
    "CreateOutcomeUnknownError",
    "InvalidRequestError",
    "MissingApiKeyError",
    "NoSuchInstanceError",
    "NotFoundError",
    "OfferUnavailableError",
    "QuotaExceededError",
    "RateLimitedError",
    "TransportError",
    "UnexpectedResponseError",
    "VastError",
]


class VastError(Exception):
    """Base of every error the client raises; carries the HTTP status and Vast's error code when known."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        method: str | None = None,
        path: str | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.method = method
        self.path = path
        self.attempts = attempts

    def _state(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "method": self.method,
            "path": self.path,
            "attempts": self.attempts,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors break the default exception pickling (it replays `self.args`);
        # Pulumi may pickle errors across its process boundary, so rebuild from our own state.
        return (_rebuild, (type(self), self.message, self._state()))

    def __str__(self) -> str:
        where = f"{self.method} {self.path}" if self.method and self.path else ""
        parts = []
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        tail = []
        if where:
            tail.append(where)
        if self.attempts > 1:
            tail.append(f"after {self.attempts} attempts")
        return f"{text} ({', '.join(tail)})" if tail else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r}, code={self.code!r})"


def _rebuild(cls: type[VastError], message: str, state: dict[str, Any]) -> VastError:
    err = cls.__new__(cls)
    VastError.__init__(err, message)
    for key, value in state.items():
        setattr(err, key, value)
    return err


class InvalidRequestError(VastError, ValueError):
    """Arguments Vast would reject (or that would make create unsafe), caught before anything is sent."""


class AuthError(VastError):
    """401 / 403. Not retried: a bad key stays bad, and hammering auth gets a key throttled."""


class MissingApiKeyError(AuthError):
    """No API key from the argument or `VAST_API_KEY`; raised before any request."""


class NotFoundError(VastError):
    """404. On its own it proves nothing about an instance: a proxy, a gateway or a wrong base URL answers 404
    too, and taking that for "gone" would drop a paid instance from the state."""


class NoSuchInstanceError(NotFoundError):
    """Vast's own answer that the instance does not exist (`no_such_instance`): the one 404 that means gone
    (`destroy` counts it as done, `get_instance` as None)."""


class OfferUnavailableError(NotFoundError):
    """The offer cannot be rented any more (404 `no_such_ask`, or 410): choose another offer."""


class RateLimitedError(VastError):
    """429 that outlived our retries or the deadline. `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "retry_after": self.retry_after}


class QuotaExceededError(RateLimitedError):
    """429 `search_quota_exceeded`: the search quota resets at UTC midnight, so retrying only burns requests.

    `retry_after` comes from `X-RateLimit-Reset` when Vast sends it."""


class ApiError(VastError):
    """Any other HTTP error, or a 2xx whose body says `"success": false`."""


class UnexpectedResponseError(ApiError):
    """A 2xx whose body is not JSON or lacks the fields we rely on (a Vast API change, or a proxy page)."""


class TransportError(VastError):
    """The request did not complete: connection refused / reset, timeout, or the client was closed."""


class CreateOutcomeUnknownError(TransportError):
    """A rent request may have succeeded: it was sent, no answer came back, and listing instances by its
    label failed too. The instance may exist and bill; look it up by `label` before renting again."""

    def __init__(self, message: str, *, label: str, offer_id: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.label = label
        self.offer_id = offer_id

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "label": self.label, "offer_id": self.offer_id}
