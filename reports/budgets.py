"""Each team's daily budget, read from its platform-owned team file (`policies/teams/<team>.json`), for the
chart to draw. Read as plain JSON: the reports judge nothing, so they do not load the policy pack (which
needs Pulumi); the pack's own loader stays the one that validates the whole file."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

BUDGET_POLICY = "vast-daily-budget"


class BudgetError(ValueError):
    """A team file exists but its budget cannot be read; the message names the file and the fix."""


class _Budget(BaseModel):
    model_config = ConfigDict(extra="ignore")

    daily_budget: Decimal | None = None


def daily_budgets(teams: Iterable[str], directory: Path) -> dict[str, Decimal | None]:
    """team -> daily budget in $; None for a team without a team file (the chart then says so)."""
    out: dict[str, Decimal | None] = {}
    for team in teams:
        path = directory / f"{team}.json"
        if not path.is_file():
            out[team] = None
            continue
        try:
            block = json.loads(path.read_text()).get(BUDGET_POLICY) or {}
            out[team] = _Budget.model_validate(block).daily_budget
        except (json.JSONDecodeError, AttributeError, ValidationError) as err:
            raise BudgetError(f"{path}: cannot read {BUDGET_POLICY}.daily_budget ({str(err).splitlines()[0]}); "
                              f"check it with `vastguard team check`") from None
    return out
