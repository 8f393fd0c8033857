"""Builders for backend-level tests: a market on a frozen virtual clock, accounts, rents."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from emulator.bodies import AccountBody, CreateInstanceBody, OfferBody
from emulator.clock import ClockState, VirtualClock
from emulator.models import Account, EmulatorConfig, Instance, MarketBackend, OfferQuote
from emulator.query import parse_search

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a UTC midnight
HOUR = 3600.0
DAY = 86400.0


def make_market(*, provision_delay: float = 0.0, seed: int = 7, offers: int = 300, start: float = T0,
                **config: Any) -> MarketBackend:
    clock = VirtualClock(ClockState(frozen_at=start))
    return MarketBackend.fresh(seed=seed, offers=offers, clock=clock,
                               config=EmulatorConfig(provision_delay=provision_delay, **config))


def account(market: MarketBackend, balance: float | str = 100, key: str | None = None) -> Account:
    key = key or f"key-{len(market.state.accounts)}-{balance}"
    return market.create_account(AccountBody(api_key=key, balance=Decimal(str(balance)))).account


def search(market: MarketBackend, acct: Account, body: dict[str, Any]) -> list[OfferQuote]:
    return market.search_offers(acct, parse_search(body)).quotes


def offer(market: MarketBackend, *, dph_base: str = "0.5000", storage_cost: str = "0.100",
          gpu_name: str = "RTX 4090", num_gpus: int = 1, disk_space: float = 500.0) -> int:
    """A hand-made offer at exact prices, so billing numbers are easy to check by hand."""
    return market.add_offer(OfferBody(gpu_name=gpu_name, num_gpus=num_gpus, dph_base=Decimal(dph_base),
                                      storage_cost=Decimal(storage_cost), disk_space=disk_space)).id


def rent(market: MarketBackend, acct: Account, offer_id: int, **body: Any) -> Instance:
    body.setdefault("image", "pytorch/pytorch:latest")
    body.setdefault("disk", 20.0)
    return market.create_instance(acct, offer_id, CreateInstanceBody(**body))


def status(market: MarketBackend, acct: Account, instance_id: int) -> str | None:
    inst, _ = market.show_instance(acct, instance_id)
    return None if inst is None else inst.actual_status
