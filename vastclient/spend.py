"""What a team has spent, read from Vast: one listing of its instances and one charges query (a page per 100
rows) for the UTC days its budget windows cover, folded by `fleet.spend.read_spend`. The `vastai:TeamSpend`
provider reads it at preview, the guard and `vastguard budget allocate` on every pass, so all three judge the
same number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from fleet.budget import WindowKind, charge_days, window
from fleet.spend import SpendReading, read_spend
from vastclient.client import VastClient
from vastclient.models import Charge, Instance

CHARGE_PAGE = 100


def team_spend(client: VastClient, *, timezone: str, kinds: tuple[WindowKind, ...],
               instances: Sequence[Instance] | None = None, listed_at: float | None = None,
               ) -> tuple[SpendReading, list[Instance], list[Charge]]:
    """The reading at Vast's clock now (`instances`: a listing this process already took at `listed_at`, to
    reuse), with the listing and the charges it rests on. Raises the client's errors (`VastError`): a caller
    that must not fail turns them into an unknown reading."""
    if instances is None:
        live = client.list_instances()
        listed_at = client.last_server_time
    else:
        live = list(instances)
    at = datetime.fromtimestamp(listed_at, UTC) if listed_at is not None else datetime.now(UTC)
    first, last = charge_days((window(kind, at, timezone) for kind in kinds), at)
    # Through the next UTC day: a midnight passing between the listing and the charges loses nothing.
    charges = client.charges(first.date(), (last + timedelta(days=1)).date())
    charged_at = client.last_server_time
    if charged_at is not None:
        at = max(at, datetime.fromtimestamp(charged_at, UTC))
    reading = read_spend(timezone=timezone, kinds=kinds, at=at, rows=[c.budget_row() for c in charges],
                         rates=[i.live_rate() for i in live], instances=[i.live() for i in live],
                         charge_pages=max(1, math.ceil(len(charges) / CHARGE_PAGE)))
    return reading, live, charges
