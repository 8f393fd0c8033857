"""The emulator's state: plain pydantic models, persisted whole as one JSON document (the state file).

Nothing here acts: `emulator.lifecycle` moves this state through time, `emulator.operations` and
`emulator.control` change it on request. API keys are never part of it, only their SHA-256 (`key_digest`).
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from emulator import billing
from emulator.catalogue import Offer
from emulator.clock import ClockState

__all__ = [
    "Account",
    "ChargeDay",
    "EmulatorConfig",
    "Fault",
    "Instance",
    "MarketState",
    "RaceRule",
    "key_digest",
]

FIRST_INSTANCE_ID = 21_000_000
FIRST_ACCOUNT_ID = 100_001
FIRST_CUSTOM_OFFER_ID = 9_000_000

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
    model_config = ConfigDict(extra="forbid")

    id: int
    key_sha256: str = Field(repr=False)
    username: str
    email: str
    credit: Decimal  # all money ever put in; the balance is this minus the charges
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
    ssh_port: int

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


class RaceRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer_id: int | None
    mode: Literal["reject", "late"]


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
    charges: dict[str, ChargeDay] = Field(default_factory=dict)  # "<instance id>:<day>"
    races: list[RaceRule] = Field(default_factory=list)
    clock: ClockState = Field(default_factory=ClockState)
    config: EmulatorConfig = Field(default_factory=EmulatorConfig)
    next_instance_id: int = FIRST_INSTANCE_ID
    next_account_id: int = FIRST_ACCOUNT_ID
    next_offer_id: int = FIRST_CUSTOM_OFFER_ID
    billed_until: float = 0.0
