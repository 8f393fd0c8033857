"""vastguard's typed client for the Vast.ai REST API.

The one package that speaks HTTP to Vast (and the only one importing httpx). Everything it raises is a
`vastclient.errors.VastError` (the tree is drawn in that module), with the API key redacted.

    with VastClient() as vast:                       # key from VAST_API_KEY, URL from VAST_URL
        offers = vast.search_offers(OfferQuery(gpu_names="RTX_4090", max_dph=0.6))
        instance_id = vast.create_instance(offers[0].id, image="pytorch/pytorch", disk_gb=20, label="team-a-1")
"""

from typing import TYPE_CHECKING, Any

from vastclient.errors import (
    ApiError,
    AuthError,
    CreateOutcomeUnknownError,
    InvalidRequestError,
    MissingApiKeyError,
    NotFoundError,
    OfferUnavailableError,
    QuotaExceededError,
    RateLimitedError,
    TransportError,
    UnexpectedResponseError,
    VastError,
)
from vastclient.gpus import UnknownGpuError
from vastclient.models import (
    FAILED_STATUSES,
    PENDING_STATUSES,
    Charge,
    ChargeItem,
    ChargeMetadata,
    Instance,
    InstancePhase,
    Offer,
    User,
)
from vastclient.query import OfferQuery, OfferType

if TYPE_CHECKING:
    from vastclient.client import DEFAULT_BASE_URL, ChargeType, VastClient


def __getattr__(name: str) -> Any:
    # The client (and httpx, ~0.2 s to import) loads on first use: the policy pack imports only the GPU
    # names and models, and its start-up delays every `pulumi preview --policy-pack`.
    if name in ("DEFAULT_BASE_URL", "ChargeType", "VastClient"):
        from vastclient import client

        return getattr(client, name)
    raise AttributeError(f"module 'vastclient' has no attribute {name!r}")

__all__ = [
    "DEFAULT_BASE_URL",
    "FAILED_STATUSES",
    "PENDING_STATUSES",
    "ApiError",
    "AuthError",
    "Charge",
    "ChargeItem",
    "ChargeMetadata",
    "ChargeType",
    "CreateOutcomeUnknownError",
    "Instance",
    "InstancePhase",
    "InvalidRequestError",
    "MissingApiKeyError",
    "NotFoundError",
    "Offer",
    "OfferQuery",
    "OfferType",
    "OfferUnavailableError",
    "QuotaExceededError",
    "RateLimitedError",
    "TransportError",
    "UnexpectedResponseError",
    "UnknownGpuError",
    "User",
    "VastClient",
    "VastError",
]
