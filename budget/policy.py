"""Each team's budget settings for the guard and the allocator, read from its team file (the same file the policy
pack judges previews with, validated as a whole by `policies.teamfile`), with today's active exceptions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from fleet.budget import WindowKind
from fleet.costs import money
from policies.config import IdlePolicy, PrepaidPolicy, active_allows
from policies.teamfile import TEAMS_DIR, TeamFile, TeamFileError, load_team_file


class TeamPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    team: str
    timezone: str
    daily: Decimal
    monthly: Decimal | None
    action: str  # alert | pause
    warn_share: Decimal
    idle: IdlePolicy | None
    prepaid: PrepaidPolicy | None

    @property
    def kinds(self) -> tuple[WindowKind, ...]:
        return ("day", "month") if self.monthly is not None else ("day",)

    def budget(self, kind: WindowKind) -> Decimal | None:
        return self.daily if kind == "day" else self.monthly

    @property
    def thresholds(self) -> tuple[Decimal, ...]:
        return tuple(sorted({self.warn_share, Decimal(1)}))


def team_policy(tf: TeamFile, today: date) -> TeamPolicy:
    daily = max(money(v) for v in [tf.daily_budget.daily_budget, *active_allows(tf.daily_budget.exceptions, today)])
    monthly = None
    if tf.monthly_budget.monthly_budget is not None:
        monthly = max(money(v) for v in [tf.monthly_budget.monthly_budget,
                                         *active_allows(tf.monthly_budget.exceptions, today)])
    enforcement = tf.budget_enforcement
    return TeamPolicy(team=tf.team, timezone=tf.actual_spend.timezone, daily=daily, monthly=monthly,
                      action=enforcement.action, warn_share=money(enforcement.warn_share), idle=enforcement.idle,
                      prepaid=enforcement.prepaid)


def load_policies(directory: Path = TEAMS_DIR, teams: Sequence[str] = (), *, today: date) -> list[TeamPolicy]:
    """The teams' settings (all team files in `directory`, or the `teams` named); a team named without a file, or
    a file that does not validate, raises TeamFileError naming it."""
    paths = ([directory / f"{t}.json" for t in teams] if teams
             else sorted(p for p in directory.glob("*.json") if not p.name.startswith("_")))
    if not paths:
        raise TeamFileError(str(directory), ["no team files: create one with `vastguard team add <team>`"])
    return [team_policy(load_team_file(p), today) for p in paths]
