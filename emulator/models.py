"""The marketplace behind the API, moto-style: `MarketBackend` is the one backend object the HTTP layer and the
tests talk to, assembled from one module per concern:

- `emulator.state`: the plain state (pydantic, persisted as one JSON document);
- `emulator.lifecycle`: time and money (the replay to "now": boots, stops, billing, credit exhaustion);
- `emulator.identity`: keys (digests only), authentication into a `Caller`, the audit log;
- `emulator.operations`, `emulator.bidding`, `emulator.keys`, `emulator.teams`: one method per Vast API
  operation (instances; bids and competing demand; API keys; teams, roles, members and credit), raising the
  typed errors of `emulator.errors`;
- `emulator.priority`: who runs on a machine (on-demand over bids, the highest bid first);
- `emulator.access`: which endpoint needs which permission, and the checks;
- `emulator.control`: the control plane's operations (`/_emulator/`);
- `emulator.results`: what operations return.

No HTTP here.
"""

from __future__ import annotations

from emulator import catalogue
from emulator.bidding import BiddingOperations
from emulator.catalogue import Offer
from emulator.clock import VirtualClock
from emulator.control import ControlOperations
from emulator.keys import KeyOperations
from emulator.results import (
    BulkDestroyResult,
    ChargeLine,
    ChargePage,
    InstancePage,
    OfferQuote,
    SearchResult,
    UserView,
)
from emulator.state import Account, ChargeDay, EmulatorConfig, Instance, MarketState, key_digest

__all__ = [
    "Account",
    "BulkDestroyResult",
    "ChargeDay",
    "ChargeLine",
    "ChargePage",
    "EmulatorConfig",
    "Instance",
    "InstancePage",
    "MarketBackend",
    "MarketState",
    "Offer",
    "OfferQuote",
    "SearchResult",
    "UserView",
    "key_digest",
]


class MarketBackend(BiddingOperations, KeyOperations, ControlOperations):
    """The marketplace: API operations (instances and bids, keys, teams) and control operations over one state,
    one clock and one lock."""

    @classmethod
    def fresh(cls, *, seed: int = 0, offers: int = catalogue.DEFAULT_OFFERS, config: EmulatorConfig | None = None,
              clock: VirtualClock | None = None) -> MarketBackend:
        clock = clock if clock is not None else VirtualClock()
        config = config or EmulatorConfig()
        now = clock.now()
        state = MarketState(seed=seed, catalogue_size=offers, seeded_at=now,
                            offers={o.id: o for o in catalogue.generate(seed, offers)},
                            config=config.model_copy(), clock=clock.snapshot(), billed_until=now)
        return cls(state, clock=clock, defaults=config)
