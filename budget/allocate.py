"""`vastguard budget allocate`: prepaid credit. Each team in prepaid mode (its team file's
`vast-budget-enforcement.prepaid`) gets its Vast team balance set to what is left of its budget for the period,
less the storage its disks will bill by the period's end (`fleet.budget.credit_plan`). Vast stops a team's
running instances when its balance reaches zero, whatever its keys do; with the storage reserved too, the
period's spend cannot exceed the budget. When a period is over, what it left unused goes back to the platform
(`reclaim: true`), so the period's top-ups less its reclaims are what it spent.

Credit moves platform -> team with the platform owner's personal key (`transfer_credit(team id, amount)`), and
team -> platform with a key acting in the team (a team can send credit only back to its owner). Every transfer is
in the ledger (`fleet.budget_log`): who, when, how much, the balance before and after, and what the plan rested
on; `vastguard audit` shows them beside Vast's own record of each.

Idempotent, even twice at once: a run plans from the team's balance and spend read now, so a second run in a row
finds nothing to move; and before it moves anything it takes the ledger's next sequence number (creating that
record is atomic on every backend), so of two runs planning at the same moment only one transfers, and the other
plans again from the new balance. A run that died between taking its number and recording the outcome leaves a
pending intent; a later run settles it from Vast's audit log (did the transfer happen?) before planning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from budget.guard import TeamOutcome, dollars
from budget.keys import PLATFORM_KEY_ENV, KeyLookup, KeyProblem, owner_env_name
from budget.policy import TeamPolicy
from budget.store import BudgetLog
from fleet.budget import (
    Window,
    WindowKind,
    WindowSpend,
    ceil_cents,
    credit_plan,
    floor_cents,
    parse_window_key,
    window,
    window_spend,
    zone,
)
from fleet.budget_log import Actor, Transfer, TransferIntent, TransferKind, TransferOutcome
from reports.charges import env_name
from vastclient import VastClient, VastError
from vastclient.spend import team_spend

ClientFactory = Callable[[str], AbstractContextManager[VastClient]]
INTENT_TTL = 600.0
"""Seconds (Vast's clock) a transfer in flight keeps its ledger slot before a later run settles it."""
PLAN_ATTEMPTS = 3
MIN_TOP_UP_SHARE = Decimal("0.005")
"""A top-up waits until the balance is this share of the budget below its target: as a period runs out, the
storage reserved for it shrinks by fractions of a cent every minute, and a transfer for each would flood the
ledger. (A reclaim never waits: a balance above its target could let the period's spend exceed the budget.)"""


class _Conflict(Exception):
    """Another run took the ledger's next number first: plan again from what it did."""


class _InFlight(Exception):
    pass


@dataclass
class _Team:
    policy: TeamPolicy
    kind: WindowKind
    budget: Decimal
    team: VastClient
    owner: VastClient
    platform: VastClient
    outcome: TeamOutcome
    transfers: list[Transfer] = field(default_factory=list)
    owner_id: int | None = None  # the platform owner's personal account (where reclaims go)

    @property
    def name(self) -> str:
        return self.policy.team

    @property
    def next_seq(self) -> int:
        return max((t.intent.seq for t in self.transfers), default=0) + 1


class Allocator:
    def __init__(self, *, log: BudgetLog, keys: KeyLookup, connect: ClientFactory, actor: Actor) -> None:
        self.log, self.keys, self.connect, self.actor = log, keys, connect, actor

    def run(self, policies: Sequence[TeamPolicy]) -> list[TeamOutcome]:
        return [self.team(p) for p in policies if p.prepaid is not None]

    def team(self, policy: TeamPolicy) -> TeamOutcome:
        outcome = TeamOutcome(policy.team)
        prepaid = policy.prepaid
        if prepaid is None:
            outcome.note("not in prepaid mode")
            return outcome
        kind: WindowKind = prepaid.period
        budget = policy.budget(kind)
        if budget is None:
            outcome.errors.append(f"team {policy.team}: prepaid period {kind} has no budget; set "
                                  f"vast-monthly-budget.monthly_budget in policies/teams/{policy.team}.json")
            return outcome
        try:
            team_key, owner_key, platform_key = (self.keys.team_key(policy.team), self.keys.owner_key(policy.team),
                                                 self.keys.platform_key())
        except KeyProblem as err:
            outcome.errors.append(f"team {policy.team}: {err}; nothing was moved")
            return outcome
        missing = [name for name, key in ((env_name(policy.team), team_key), (PLATFORM_KEY_ENV, platform_key))
                   if not key]
        if missing or not owner_key or not team_key or not platform_key:
            outcome.errors.append(f"team {policy.team}: export {' and '.join(missing) or owner_env_name(policy.team)} "
                                  "(the team's key, the team owner's key in the team for reclaims, and the platform "
                                  "owner's personal key); nothing was moved")
            return outcome
        try:
            with ExitStack() as stack:
                team = stack.enter_context(self.connect(team_key))
                owner = team if owner_key == team_key else stack.enter_context(self.connect(owner_key))
                platform = stack.enter_context(self.connect(platform_key))
                state = _Team(policy, kind, budget, team, owner, platform, outcome)
                for _ in range(PLAN_ATTEMPTS):
                    try:
                        self._plan_and_move(state)
                        break
                    except _Conflict:
                        outcome.note("another allocation moved credit meanwhile: planned again")
                else:
                    outcome.errors.append(f"team {policy.team}: other allocations kept taking the ledger's next "
                                          "number; nothing more was moved by this run: run it again")
        except _InFlight as err:
            outcome.note(str(err))  # not a failure: that run does this team's part
        except VastError as err:
            outcome.errors.append(f"team {policy.team}: {err}; nothing is half-done (every transfer made is in the "
                                  "ledger): run `vastguard budget allocate` again")
        return outcome

    # --- one plan ----------------------------------------------------------------------------------------

    def _plan_and_move(self, s: _Team) -> None:
        s.transfers = self.log.transfers(s.name)
        reading, listing, charges = team_spend(s.team, timezone=s.policy.timezone, kinds=(s.kind,))
        if reading.status != "known" or reading.read_at is None:
            raise VastError(f"its spend is unknown ({reading.reason})")
        now = datetime.fromtimestamp(reading.read_at, UTC)
        self._settle(s, reading.read_at)
        current = window(s.kind, now, s.policy.timezone)
        spend = window_spend(current, now, [c.budget_row() for c in charges],
                             [i.live_rate() for i in listing])
        user = s.team.current_user()
        balance = user.balance if user.balance is not None else Decimal(0)
        closes = self._closes(s, current.key, now) if s.policy.prepaid and s.policy.prepaid.reclaim else []
        carried = sum((amount for _, amount, _ in closes), Decimal(0))
        plan = credit_plan(budget=s.budget, spend=spend, balance=balance - carried,
                           reclaim=bool(s.policy.prepaid and s.policy.prepaid.reclaim),
                           min_top_up=s.budget * MIN_TOP_UP_SHARE)
        s.outcome.note(f"{current.key}: budget {dollars(s.budget)}, spent {dollars(spend.spent)}, disks to the "
                       f"period's end {dollars(spend.storage_to_end)}, balance {dollars(balance)} -> target "
                       f"{dollars(plan.target)}")
        # Top ups first: a reclaim first could leave the balance at zero for a moment, and Vast stops a team's
        # instances at that instant.
        for period, amount, spent in closes:
            if amount < 0:
                self._move(s, "top-up", -amount, period, user.id, None, None, closed_spent=spent)
        if plan.top_up > 0:
            self._move(s, "top-up", plan.top_up, current.key, user.id, None, spend)
        for period, amount, spent in closes:
            if amount >= 0:
                self._move(s, "reclaim", amount, period, user.id, None, None, closed_spent=spent)
        if plan.reclaim > 0:
            self._move(s, "reclaim", plan.reclaim, current.key, user.id, None, spend)

    def _closes(self, s: _Team, current: str, now: datetime) -> list[tuple[str, Decimal, Decimal]]:
        """(period, amount, what it spent) for each earlier period not closed yet: the amount it left unused, to
        reclaim, or (negative) what its disks billed beyond the balance once Vast had stopped the team at zero,
        which the period's budget reserved for them and the platform now pays."""
        out = []
        periods = sorted({t.intent.period for t in s.transfers if t.intent.period != current})
        for period in periods:
            mine = [t for t in s.transfers if t.intent.period == period]
            if any(t.intent.closes for t in mine):
                continue
            closed = _window_of(period)
            if closed is None or closed.end > now:
                continue
            charges = s.team.charges(closed.start.date(), closed.end.date())
            spent = window_spend(closed, closed.end, [c.budget_row() for c in charges], []).spent
            given = sum((t.intent.amount for t in mine if t.sent and t.intent.kind == "top-up"), Decimal(0))
            taken = sum((t.intent.amount for t in mine if t.sent and t.intent.kind == "reclaim"), Decimal(0))
            left = given - taken - spent
            out.append((period, floor_cents(left) if left >= 0 else -ceil_cents(-left), spent))
        return out

    def _move(self, s: _Team, kind: TransferKind, amount: Decimal, period: str, team_id: int,
              balance: Decimal | None, spend: WindowSpend | None, *, closed_spent: Decimal | None = None) -> None:
        before = balance if balance is not None else (s.team.current_user().balance or Decimal(0))
        at = s.team.last_server_time or datetime.now(UTC).timestamp()
        recipient = str(team_id) if kind == "top-up" else str(self._owner_id(s))
        intent = TransferIntent(
            seq=s.next_seq, team=s.name, team_account=team_id, recipient=recipient, period=period, kind=kind,
            amount=amount,
            balance_before=before,
            budget=s.budget, spent=closed_spent if closed_spent is not None else (spend.spent if spend else Decimal(0)),
            reserve=spend.storage_to_end if spend else Decimal(0), closes=closed_spent is not None, at=at,
            by=self.actor)
        if not self.log.claim_intent(intent):
            raise _Conflict
        s.transfers.append(Transfer(intent=intent))
        if amount <= 0:
            self.log.record_outcome(s.name, TransferOutcome(seq=intent.seq, status="not-sent", balance_after=before,
                                                            at=at, note="period closed: nothing left to reclaim"))
            s.outcome.note(f"{period}: closed, nothing left to reclaim")
            return
        try:
            (s.platform if kind == "top-up" else s.owner).transfer_credit(recipient, amount)
        except VastError as err:
            if getattr(err, "__notes__", None):
                raise VastError(f"the {kind} of {dollars(amount)} (ledger #{intent.seq}) may or may not have "
                                f"happened ({err}); the next run settles it from Vast's audit log") from None
            self.log.record_outcome(s.name, TransferOutcome(seq=intent.seq, status="not-sent", at=at,
                                                            note=str(err)))
            raise
        after = s.team.current_user().balance
        self.log.record_outcome(s.name, TransferOutcome(seq=intent.seq, status="sent", balance_after=after,
                                                        at=s.team.last_server_time))
        s.outcome.note(f"{period}: {kind} {dollars(amount)} (ledger #{intent.seq}); balance {dollars(before)} -> "
                       f"{dollars(after or Decimal(0))}")

    def _owner_id(self, s: _Team) -> int:
        if s.owner_id is None:
            s.owner_id = s.platform.current_user().id
        return s.owner_id

    # --- transfers a dead run left pending ----------------------------------------------------------------

    def _settle(self, s: _Team, now: float) -> None:
        for transfer in s.transfers:
            if transfer.outcome is not None:
                continue
            intent = transfer.intent
            if now - intent.at < INTENT_TTL:
                raise _InFlight(f"another allocation is moving credit (ledger #{intent.seq}, since "
                                f"{_when(intent.at)}): left to it (if it died, a run after "
                                f"{INTENT_TTL / 60:.0f} minutes settles it)")
            sender = s.platform if intent.kind == "top-up" else s.owner
            happened = any(
                e.api_route == "api.user.transfer_credit" and isinstance(e.args, dict)
                and str(e.args.get("recipient")) == intent.recipient
                and Decimal(str(e.args.get("amount"))) == intent.amount
                and (e.created_at or 0) >= intent.at - 1
                for e in sender.audit_logs())
            outcome = TransferOutcome(seq=intent.seq, status="sent" if happened else "not-sent", at=now,
                                      note="settled from Vast's audit log after the run that made it died")
            self.log.record_outcome(s.name, outcome)
            s.outcome.note(f"ledger #{intent.seq}: settled as {outcome.status} from Vast's audit log")
        s.transfers = self.log.transfers(s.name)


def _window_of(period: str) -> Window | None:
    """The window a key names (`day:2026-11-05@UTC`)."""
    parsed = parse_window_key(period)
    if parsed is None:
        return None
    kind, label, tz = parsed
    first = datetime.strptime(label + ("-01" if kind == "month" else ""), "%Y-%m-%d")
    return window(kind, first.replace(hour=12, tzinfo=zone(tz)).astimezone(UTC), tz)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
