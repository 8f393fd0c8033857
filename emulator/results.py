"""What the backend's operations return: frozen views built under the backend's lock, read by the HTTP
layer (`emulator.responses`) and serialised by `emulator.views`. Never mutated, never persisted."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from emulator import billing
from emulator.catalogue import Offer
from emulator.state import Account, ChargeDay, Instance, MarketState

__all__ = [
    "BulkDestroyResult",
    "ChargeLine",
    "ChargePage",
    "ClockReading",
    "Health",
    "InstancePage",
    "OfferQuote",
    "Reseeded",
    "SearchResult",
    "StateDump",
    "UserView",
]


class OfferQuote(BaseModel):
    """An offer as one search prices it: bid or on-demand base, plus storage for `allocated_storage`."""

    model_config = ConfigDict(frozen=True)

    offer: Offer
    dph_base: Decimal
    allocated_storage: Decimal
    is_bid: bool
    listed_since: float
    min_bid: Decimal | None = None  # what would win the machine now (None: the host's floor, the offer's min_bid)

    @property
    def storage_per_hour(self) -> Decimal:
        return billing.storage_per_hour(self.offer.storage_cost, self.allocated_storage)

    @property
    def dph_total(self) -> Decimal:
        return self.dph_base + self.storage_per_hour


class SearchResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    quotes: list[OfferQuote]
    now: float
    ignored: list[str]


class UserView(BaseModel):
    model_config = ConfigDict(frozen=True)

    account: Account
    balance: Decimal


class InstancePage(BaseModel):
    model_config = ConfigDict(frozen=True)

    instances: list[Instance]
    now: float
    found: int
    total: int
    label_counts: dict[str, int]
    next_token: str | None
    select_cols: list[str] | None


class ChargeLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    day: ChargeDay
    instance: Instance


class ChargePage(BaseModel):
    model_config = ConfigDict(frozen=True)

    lines: list[ChargeLine]
    total: int
    next_token: str | None


class BulkDestroyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    destroyed: list[int]
    not_found: list[int]


class Health(BaseModel):
    model_config = ConfigDict(frozen=True)

    offers: int
    accounts: int
    seed: int


class Reseeded(BaseModel):
    model_config = ConfigDict(frozen=True)

    seed: int
    offers: int
    new_offers: int


class ClockReading(BaseModel):
    model_config = ConfigDict(frozen=True)

    now: float
    frozen: bool


class StateDump(BaseModel):
    """The whole market, for assertions and debugging, with each account's balance beside it."""

    model_config = ConfigDict(frozen=True)

    state: MarketState
    balances: dict[int, Decimal]
    clock: ClockReading
