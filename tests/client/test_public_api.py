"""The package's public surface, and which of its modules speak httpx (that no other package does is the layering
contract's job: tests/test_layers.py)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import vastclient
from vastclient import errors

EXPECTED = {
    "API_KEY_ENV", "DEFAULT_BASE_URL", "MISSING_KEY_HELP", "URL_ENV", "FAILED_STATUSES", "PENDING_STATUSES",
    "ApiError", "ApiKeyInfo", "AuditEntry", "AuthError", "CreatedApiKey", "Member", "Role",
    "Charge", "ChargeItem", "ChargeMetadata", "ChargeType",
    "CreateOutcomeUnknownError", "Instance", "InstancePhase", "InvalidRequestError", "MissingApiKeyError",
    "NoSuchInstanceError", "NotFoundError", "Offer", "OfferQuery", "OfferType", "OfferUnavailableError",
    "QuotaExceededError",
    "RateLimitedError", "TransportError", "UnexpectedResponseError", "User",
    "VastClient", "VastError", "keep_one",
}  # fmt: skip

ROOT = Path(__file__).resolve().parents[2]


def test_all_is_exactly_the_public_api() -> None:
    assert set(vastclient.__all__) == EXPECTED
    assert len(vastclient.__all__) == len(set(vastclient.__all__))
    for name in vastclient.__all__:
        assert hasattr(vastclient, name), name


def test_every_error_is_exported_and_in_the_drawn_tree() -> None:
    classes = {name for name, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, errors.VastError)}
    assert classes == set(errors.__all__)
    assert classes <= set(vastclient.__all__)
    for name in classes:
        assert name in (errors.__doc__ or ""), f"{name} missing from the tree in errors' docstring"


def test_client_options_are_keyword_only() -> None:
    client = vastclient.VastClient
    for fn in (client.__init__, client.create_instance, client.list_instances):
        params = list(inspect.signature(fn).parameters.values())[1:]
        positional = [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        assert positional in ([], ["offer_id"]), (fn.__name__, positional)
    charges = inspect.signature(vastclient.VastClient.charges).parameters
    assert charges["types"].kind is inspect.Parameter.KEYWORD_ONLY


_HTTPX_IMPORT = re.compile(r"^\s*(import\s+httpx\b|from\s+httpx\b)", re.MULTILINE)


def _imports_httpx(path: Path) -> bool:
    # A regex, not ast: a file another engineer is halfway through must not break this test.
    return bool(_HTTPX_IMPORT.search(path.read_text(encoding="utf-8", errors="replace")))


def test_within_the_package_only_the_transport_imports_httpx() -> None:
    package = ROOT / "vastclient"
    users = sorted(p.name for p in package.glob("*.py") if _imports_httpx(p))
    assert users == ["_transport.py", "client.py"]  # client.py only for the `transport=` option's type


def test_the_server_clock_is_public_and_typed() -> None:
    prop = inspect.getattr_static(vastclient.VastClient, "last_server_time")
    assert isinstance(prop, property) and prop.fset is None and prop.fget is not None
    assert inspect.signature(prop.fget).return_annotation in ("float | None", float | None)
