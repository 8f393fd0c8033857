"""The emulator's state: plain pydantic models, persisted whole as one JSON document (the state file).

Nothing here acts: `emulator.lifecycle` moves this state through time, `emulator.operations` and
`emulator.control` change it on request. API keys are never part of it, only their SHA-256 (`key_digest`).
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from emulator import billing
from emulator.catalogue import Offer
from emulator.clock import ClockState
from fleet.permissions import KeyParams, PermissionSet

__all__ = [
    "Account",
    "ApiKey",
    "AuditEntry",
    "ChargeDay",
    "Demand",
    "EmulatorConfig",
    "Fault",
    "Instance",
    "Invitation",
    "MarketState",
    "Member",
    "RaceRule",
    "Role",
    "key_digest",
]

FIRST_INSTANCE_ID = 21_000_000
FIRST_ACCOUNT_ID = 100_001
FIRST_CUSTOM_OFFER_ID = 9_000_000
FIRST_KEY_ID = 500_001
FIRST_ROLE_ID = 7_001

Fault = Literal["stuck_loading", "exit_on_start"]


def key_digest(api_key: str) -> str:
    """Accounts are found by the SHA-256 of their key: the key itself is never stored, dumped or persisted."""
    return hashlib.sha256(api_key.encode()).hexdigest()


class EmulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provision_delay: float = Field(default=5.0, ge=0)
    rate_limits: bool = False
    latency_ms: int = Field(default=0, ge=0)
    strict_search: bool = False
    default_search_limit: int = Field(default=64, ge=1)


class Account(BaseModel):
    """A Vast account: a person's (`user`), or a team's (`team`: created by its owner, a separate account with
    its own balance, instances and charges; docs.vast.ai/guides/teams/teams-overview). Its keys are `ApiKey`s."""

    model_config = ConfigDict(extra="forbid")

    id: int
    username: str  # a team's is its team name (unique among all usernames, as Vast requires)
    email: str
    credit: Decimal  # all money ever put in; the balance is this minus the charges
    created_at: float
    kind: Literal["user", "team"] = "user"
    owner_id: int | None = None  # a team's owner (a user account)
    deleted_at: float | None = None  # a destroyed team
    key_sha256: str | None = Field(default=None, repr=False)  # state files before `ApiKey`: migrated at load


class ApiKey(BaseModel):
    """One API key: who holds it (`user_id`, a user account) and which account it acts on (`account_id`: the
    holder's own, or a team's for a key made in the team's context, Vast's `key_type` "team"). `permissions`
    None is everything the holder may do there (the account's main key; in a team, the holder's role).
    The key itself is never kept: only its SHA-256."""

    model_config = ConfigDict(extra="forbid")

    id: int
    key_sha256: str = Field(repr=False)
    account_id: int
    user_id: int
    name: str | None
    key_type: Literal["api", "team"]
    primary: bool = False  # the account's main key (from /_emulator/accounts): cannot be deleted
    permissions: PermissionSet | None = None
    key_params: KeyParams = Field(default_factory=KeyParams)
    created_at: float
    deleted_at: float | None = None


class Role(BaseModel):
    """A team role. `identifier` marks Vast's default roles (`team_owner`, `team_manager`, `team_member`)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    team_id: int
    name: str
    identifier: str | None = None
    permissions: PermissionSet
    created_at: float


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team_id: int
    user_id: int
    role_id: int
    joined_at: float


class Invitation(BaseModel):
    """An invitation e-mailed to `email`; accepted through the control plane (the e-mail's link)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    team_id: int
    email: str
    role_id: int
    invited_by: int  # user account id
    created_at: float
    expires_at: float
    accepted_at: float | None = None


class AuditEntry(BaseModel):
    """One important action, as `GET /api/v0/audit_logs/` lists it (the CLI's columns: ip_address,
    api_key_id, created_at, api_route, args), kept in the log of the account the key acted on."""

    model_config = ConfigDict(extra="forbid")

    id: int
    account_id: int
    user_id: int
    api_key_id: int
    ip_address: str
    api_route: str
    args: dict[str, Any]
    created_at: float


class Instance(BaseModel):
    """A rented instance (a "contract"). `offer` is a snapshot of the ask at rent time."""

    model_config = ConfigDict(extra="forbid")

    id: int
    account_id: int
    offer: Offer
    dph_base: Decimal  # what the GPU costs while running: on-demand price, or the bid
    is_bid: bool
    disk: Decimal  # GB allocated
    image: str
    label: str | None
    extra_env: list[tuple[str, str]]
    onstart: str | None
    runtype: str | None
    template_hash_id: str | None
    created_at: float
    destroyed_at: float | None = None
    intended_status: Literal["running", "stopped"] = "running"
    actual_status: str = "created"
    status_msg: str = ""
    transition_at: float | None = None
    transition_to: Literal["loading", "running"] | None = None
    ready_at: float | None = None
    fault: Fault | None = None
    fault_msg: str | None = None
    running_since: float | None = None
    outbid_since: float | None = None  # a bid instance paused by the market (not by its owner) since then
    ssh_port: int
    gpu_util: list[tuple[float, float]] = Field(default_factory=list)  # a curve (emulator.utilization)

    @property
    def storage_per_hour(self) -> Decimal:
        return billing.storage_per_hour(self.offer.storage_cost, self.disk)

    @property
    def dph_total(self) -> Decimal:
        return self.dph_base + self.storage_per_hour

    @property
    def hourly_rate(self) -> Decimal:
        """What the instance costs right now: storage always, the GPU only while running."""
        return self.storage_per_hour + (self.dph_base if self.actual_status == "running" else Decimal(0))


class ChargeDay(BaseModel):
    """One instance's billable time within one UTC day; amounts are derived (see billing.py)."""

    model_config = ConfigDict(extra="forbid")

    instance_id: int
    account_id: int
    day: int
    first: float
    last: float
    alive_seconds: Decimal = Decimal(0)
    running_seconds: Decimal = Decimal(0)
    # running seconds per GPU rate ($/h as text): a bid changed during the day bills each part at its own rate
    priced_running: dict[str, Decimal] = Field(default_factory=dict)


class RaceRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer_id: int | None
    mode: Literal["reject", "late"]


class Demand(BaseModel):
    """Someone else's demand for a machine (the control plane's `/_emulator/demand`): an on-demand rental, which
    outranks every bid, or a bid at `price`, from `start` until `end` (None: until it is ended) on the virtual
    clock. It never bills anyone here; it only decides whose interruptible instance runs."""

    model_config = ConfigDict(extra="forbid")

    id: int
    offer_id: int
    kind: Literal["on-demand", "bid"]
    price: Decimal | None = None
    start: float
    end: float | None = None

    def active(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


class MarketState(BaseModel):
    """Everything a restart must keep. Serialised whole to the state file."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    seed: int
    catalogue_size: int
    seeded_at: float
    offers: dict[int, Offer]
    taken: dict[int, int | None] = Field(default_factory=dict)  # offer id -> our instance id, None: someone else
    accounts: dict[int, Account] = Field(default_factory=dict)
    instances: dict[int, Instance] = Field(default_factory=dict)
    api_keys: dict[int, ApiKey] = Field(default_factory=dict)
    roles: dict[int, Role] = Field(default_factory=dict)
    members: dict[str, Member] = Field(default_factory=dict)  # "<team id>:<user id>"
    invitations: dict[int, Invitation] = Field(default_factory=dict)
    audit: list[AuditEntry] = Field(default_factory=list)
    charges: dict[str, ChargeDay] = Field(default_factory=dict)  # "<instance id>:<day>"
    races: list[RaceRule] = Field(default_factory=list)
    demand: dict[int, Demand] = Field(default_factory=dict)
    clock: ClockState = Field(default_factory=ClockState)
    config: EmulatorConfig = Field(default_factory=EmulatorConfig)
    next_instance_id: int = FIRST_INSTANCE_ID
    next_account_id: int = FIRST_ACCOUNT_ID
    next_offer_id: int = FIRST_CUSTOM_OFFER_ID
    next_key_id: int = FIRST_KEY_ID
    next_role_id: int = FIRST_ROLE_ID
    next_invitation_id: int = 1
    next_audit_id: int = 1
    next_demand_id: int = 1
    billed_until: float = 0.0
