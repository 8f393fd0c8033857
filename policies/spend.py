"""Budgets on actual spend: the rules that read the stack's `vastai:TeamSpend` reading (`fleet.spend`), and the
judgement the daily and monthly budget rules share (registered, like every rule, in `policies.rules.RULES`).

A budget in a window is judged on what the team has actually spent in it so far (Vast's charges, plus what its
instances billed since their last charge: the reading) plus what the stack's fleet will cost from the reading to
the window's end (its estimated $/h, the same `fleet.costs` estimate as before, times the hours left) plus what
the team's instances running outside the stack burn meanwhile. A reading that is missing, unknown, or in another
time zone than the team file's is never taken as $0: `vast-actual-spend` denies it (or warns, when the team file
sets that policy's `enforcementLevel` to advisory), and the budget rules then judge the estimate alone over a
whole window, as they did before readings existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from pulumi_policy import ReportViolation, StackValidationArgs

from fleet.budget import Window, WindowKind
from fleet.spend import LiveInstance
from policies.config import ActualSpendConfig, BudgetEnforcementConfig
from policies.instances import FleetEstimate, InstanceView, SpendView, spend_of, stack_and_config
from policies.names import RuleName
from policies.report import dollars, render

__all__ = ["Judgement", "actual_spend", "budget_enforcement", "judge"]


@dataclass(frozen=True)
class Judgement:
    """A budget window judged on actual spend: `spent` so far + `projected` to the window's end = `total`."""

    window: Window
    spent: Decimal
    projected: Decimal
    outside: tuple[LiveInstance, ...]
    exact: bool

    @property
    def total(self) -> Decimal:
        return self.spent + self.projected

    def detail(self, estimate: FleetEstimate) -> str:
        text = estimate.basis_summary()
        if self.outside:
            rate = sum((i.dph_total or Decimal(0) for i in self.outside), Decimal(0))
            noun = "instance" if len(self.outside) == 1 else "instances"
            text += f"; {len(self.outside)} {noun} running outside the stack at {dollars(rate)}/h"
        if not self.exact:
            text += "; spent counted at most: a charge crosses the window's start"
        return text


def judge(kind: WindowKind, estimate: FleetEstimate, spend: SpendView, stack: str) -> Judgement | None:
    """The window of `kind` judged on the reading; None when there is no known reading of that window."""
    reading = spend.known
    if reading is None or reading.read_at is None:
        return None
    read = reading.of_kind(kind)
    win = reading.window(kind)
    if read is None or win is None:
        return None
    outside = tuple(reading.outside(stack))
    hourly = estimate.cost.hourly + sum((i.dph_total or Decimal(0) for i in outside), Decimal(0))
    hours = max(Decimal(0), Decimal(str(read.end - reading.read_at)) / Decimal(3600))
    return Judgement(window=win, spent=read.spent, projected=hourly * hours, outside=outside, exact=read.exact)


def actual_spend(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """Fails closed: a budget judged without the team's actual spend would let a team that already spent its
    budget outside Pulumi (or on instances kept running) rent more. The team file may make it advisory."""
    rule = RuleName.ACTUAL_SPEND
    loaded = stack_and_config(ActualSpendConfig, rule, args, report)
    if loaded is None:
        return
    stack, _views, config = loaded
    spend = spend_of(args.resources)
    fields = {"team": config.team, "stack": stack}
    if spend.problem == "missing":
        report(render(rule, "missing", **fields), None)
    elif spend.problem == "invalid":
        report(render(rule, "invalid", **fields), spend.urn)
    elif spend.problem == "unknown":
        reason = spend.reading.reason if spend.reading is not None and spend.reading.reason else "no reading"
        report(render(rule, "unknown", reason=reason, **fields), spend.urn)
    elif spend.team != config.team:
        report(render(rule, "team-mismatch", value=spend.team or "missing", **fields), spend.urn)
    elif spend.known is not None and spend.known.timezone != config.timezone:
        report(render(rule, "timezone", value=spend.known.timezone, limit=config.timezone, **fields), spend.urn)


def _would_run(view: InstanceView, running: set[int]) -> bool:
    """Declared running (or unknown) and not running on Vast now: starting it, or renting it, starts a GPU."""
    if view.state == "stopped":
        return False
    return not (isinstance(view.instance_id, int) and view.instance_id in running)


def budget_enforcement(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """While the budget guard has paused the team (a mark on its instances for the current window), no GPU may
    start: not a new instance, not one the guard stopped. Once the window is over the marks are stale and the
    stack may run again; `vastguard resume TEAM` lifts a pause earlier, on the record."""
    rule = RuleName.BUDGET_ENFORCEMENT
    loaded = stack_and_config(BudgetEnforcementConfig, rule, args, report)
    if loaded is None:
        return
    stack, views, config = loaded
    reading = spend_of(args.resources).known
    if reading is None:
        return  # vast-actual-spend reports why there is no reading
    paused = reading.paused_for()
    if not paused:
        return
    running = {i.instance_id for i in reading.instances if i.running}
    ends = {w.key: w.end_text for w in (reading.window("day"), reading.window("month")) if w is not None}
    for view in views:
        if _would_run(view, running):
            report(render(rule, "paused", team=config.team, resource=view.name, stack=stack, value=paused[0],
                          limit=ends.get(paused[0], "the window's end")), view.urn)
