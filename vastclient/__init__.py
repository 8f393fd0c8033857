"""vastguard's typed client for the Vast.ai REST API.

The one package that speaks HTTP to Vast (and the only one importing httpx). Everything it raises is a
`vastclient.errors.VastError` (the tree is drawn in that module), with the API key redacted.

    with VastClient() as vast:                       # key from VAST_API_KEY, URL from VAST_URL
        offers = vast.search_offers(OfferQuery(gpu_names="RTX_4090", max_dph=0.6))
        instance_id = vast.create_instance(offers[0].id, image="pytorch/pytorch", disk_gb=20, label="team-a-1")
"""

from vastclient.client import API_KEY_ENV, DEFAULT_BASE_URL, MISSING_KEY_HELP, URL_ENV, ChargeType, VastClient
from vastclient.errors import (
    ApiError,
    AuthError,
    CreateOutcomeUnknownError,
    InvalidRequestError,
    MissingApiKeyError,
    NoSuchInstanceError,
    NotFoundError,
    OfferUnavailableError,
    QuotaExceededError,
    RateLimitedError,
    TransportError,
    UnexpectedResponseError,
    VastError,
)
from vastclient.models import (
    FAILED_STATUSES,
    PENDING_STATUSES,
    ApiKeyInfo,
    AuditEntry,
    Charge,
    ChargeItem,
    ChargeMetadata,
    CreatedApiKey,
    Instance,
    InstancePhase,
    Member,
    Offer,
    Role,
    User,
    keep_one,
)
from vastclient.query import OfferQuery, OfferType

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "FAILED_STATUSES",
    "MISSING_KEY_HELP",
    "PENDING_STATUSES",
    "URL_ENV",
    "ApiError",
    "ApiKeyInfo",
    "AuditEntry",
    "AuthError",
    "Charge",
    "ChargeItem",
    "ChargeMetadata",
    "ChargeType",
    "CreateOutcomeUnknownError",
    "CreatedApiKey",
    "Instance",
    "InstancePhase",
    "InvalidRequestError",
    "Member",
    "MissingApiKeyError",
    "NoSuchInstanceError",
    "NotFoundError",
    "Offer",
    "OfferQuery",
    "OfferType",
    "OfferUnavailableError",
    "QuotaExceededError",
    "RateLimitedError",
    "Role",
    "TransportError",
    "UnexpectedResponseError",
    "User",
    "VastClient",
    "VastError",
    "keep_one",
]
