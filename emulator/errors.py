"""The emulator's service errors: one exception per failure Vast.ai reports, each knowing its wire shape.

    VastError                      {"success": false, "error": <code>, "msg": <msg>} with an HTTP status
    +-- AuthError          401     exactly {"error": "auth_error", "msg": "Invalid user key"} (no `success`:
    |                              that is what Vast sends, and the official CLI keys its hints off `msg`)
    +-- Unauthorized       401     the key may not do this (its permissions, its role, its IP allow-list):
    |                              Vast's "Authorization Error. Check that you have proper privileges ..."
    +-- Forbidden          403     not allowed in this context (a team-only call from a personal account,
    |                              the owner role, the team owner)
    +-- InvalidRequest     400     the body is not JSON / not an object
    +-- InvalidArgs        400     a field is missing, malformed or out of range
    |   +-- InvalidPrice   400     a bid price outside 0.001..128 $/h
    |   +-- LabelTooLong   400     a relabel over 256 characters (manage calls use their own code)
    |   +-- MissingBilling 400     no credit left to start or rent
    |   +-- InvalidPermissionsError 400  a permission document or key_params Vast refuses, naming the field
    +-- NoSuchAsk          404     the offer is gone: `error 404/3603: no_such_ask`, Vast's exact message
    +-- NoSuchInstance     404     not one of the caller's instances
    +-- NotFound           404     no such role, key, member or team (`not_found`)
    +-- Conflict           409     control plane only (duplicate API key)
    +-- RouteNotFound      404     no such path
    +-- MethodNotAllowed   405     path exists, method does not
    +-- RateLimited        429     plain-text body, as Vast's gateway sends it (not JSON)

The backend raises these; the HTTP layer turns any of them into a response in one place
(`responses.error_response`). Nothing here ever carries an API key.
"""

from __future__ import annotations

from typing import Any


class VastError(Exception):
    status: int = 400
    code: str = "invalid_args"

    def __init__(self, msg: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        return {"success": False, "error": self.code, "msg": self.msg}


class AuthError(VastError):
    status = 401
    code = "auth_error"

    def __init__(self) -> None:
        super().__init__("Invalid user key")

    def body(self) -> dict[str, Any]:
        return {"error": "auth_error", "msg": "Invalid user key"}


class InvalidRequest(VastError):
    status = 400
    code = "invalid_request"


class InvalidArgs(VastError):
    status = 400
    code = "invalid_args"


class InvalidPermissionsError(InvalidArgs):
    code = "invalid_permissions"


class Unauthorized(VastError):
    """What Vast answers a key that lacks a permission (vast-cli issues #77 and #113 show the message, with a
    401, from `set min-bid` and a search). `denied` says what was missing, for the emulator's own
    `X-Emulator-Denied` header: the body stays Vast's."""

    status = 401
    code = "unauthorized"
    MESSAGE = "Authorization Error. Check that you have proper privileges to perform this action."

    def __init__(self, denied: str, msg: str | None = None) -> None:
        super().__init__(msg or self.MESSAGE)
        self.denied = denied


class Forbidden(VastError):
    status = 403
    code = "forbidden"


class NotFound(VastError):
    status = 404
    code = "not_found"


class InvalidPrice(InvalidArgs):
    code = "invalid_price"


class LabelTooLong(InvalidArgs):
    code = "label_too_long"


class MissingBilling(InvalidArgs):
    code = "missing_billing"


class NoSuchAsk(VastError):
    """Vast answers a rent of a vanished offer with a 404 whose `error` is the generic `invalid_args` and
    whose `msg` carries the real reason; clients match on `no_such_ask` in the message."""

    status = 404
    code = "invalid_args"

    def __init__(self, offer_id: int) -> None:
        super().__init__(f"error 404/3603: no_such_ask  Instance type by id {offer_id} is not available.")


class NoSuchInstance(VastError):
    status = 404
    code = "no_such_instance"

    def __init__(self, instance_id: int) -> None:
        super().__init__(f"Instance {instance_id} not found.")


class Conflict(VastError):
    status = 409
    code = "conflict"


class RouteNotFound(VastError):
    status = 404
    code = "not_found"


class MethodNotAllowed(VastError):
    status = 405
    code = "method_not_allowed"


class RateLimited(VastError):
    """Vast's gateway answers throttled calls with a plain-text body naming the endpoint's threshold."""

    status = 429
    code = "rate_limited"

    def __init__(self, threshold: str, retry_after: float) -> None:
        super().__init__(f"API requests too frequent endpoint threshold={threshold}")
        self.retry_after = retry_after
