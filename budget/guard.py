"""`vastguard guard`: each team's actual spend against its budgets, and what its team file says to do about it.

One pass reads, for each team, its spend (`vastclient.spend.team_spend`: one listing of its instances and one
charges query) with the team's own key, then:

- alerts once per crossing: when the spend it has committed in a window (what it spent, plus what its disks will
  bill to the window's end, which no stop can avoid) reaches the warning share and then 100% of the budget, the
  first guard to claim that crossing in the budget log sends the alert (webhook and job summary); any other
  guard, now or later, finds the claim and stays quiet;
- at 100%, with `action: pause`: stops every running instance of the team (the stack's and those rented outside
  Pulumi), marks each in its Vast label with the window it was paused for (so previews see the pause, and deny
  starting GPUs: `vast-budget-enforcement`), and records each stop (Vast's time) so that the reports cost the
  pause exactly. Storage keeps billing; nothing is destroyed;
- lifts a pause once its window is over (starts what it stopped, removes the marks), unless the new window needs
  one too; `vastguard resume TEAM` lifts it earlier, on the record (the guard then leaves the team alone until
  the window resets);
- watches idle GPUs (`idle` in the team file, dstack's utilization_policy): an instance whose `gpu_util` stays
  under the threshold for the team's minutes is reported once, or stopped.

Safe to run twice at once: claims decide who alerts, stops and starts are idempotent. A Vast error on one
instance does not stop the others; the pass says what is left and that running it again finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from budget.alerts import Alert, Alerter
from budget.keys import KeyLookup, KeyProblem, missing_key_hint
from budget.policy import TeamPolicy
from budget.store import BudgetLog
from fleet.budget import crossed, parse_window_key, window
from fleet.budget_log import Actor, Crossing, InstanceAction, Pause, Resume, guard_key
from fleet.costs import cents
from fleet.labels import IDLE, PAUSED, LabelTooLongError, marks, stack_of, with_mark, without_mark
from fleet.spend import SpendReading
from vastclient import Instance, VastClient, VastError
from vastclient.spend import team_spend

ClientFactory = Callable[[str], AbstractContextManager[VastClient]]
MAX_ALERT_ATTEMPTS = 5
RETRY_AFTER = 300.0
"""Seconds (Vast's clock) after which an alert claimed but never delivered is sent again."""
WORKERS = 8


def dollars(value: Decimal) -> str:
    return f"${cents(value)}"


def percent(share: Decimal) -> str:
    return f"{(share * 100).quantize(Decimal(1))}%"


@dataclass
class TeamOutcome:
    team: str
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reading: SpendReading | None = None

    def note(self, text: str) -> None:
        self.lines.append(text)


@dataclass
class _Pass:
    """One team's pass: its client, reading, listing and the budget log's keys of the team, read once."""

    policy: TeamPolicy
    client: VastClient
    reading: SpendReading
    listing: list[Instance]
    known: set[str]
    outcome: TeamOutcome
    labels: dict[int, str | None] = field(default_factory=dict)
    statuses: dict[int, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = {i.id: i.label for i in self.listing}
        self.statuses = {i.id: i.actual_status for i in self.listing}

    @property
    def team(self) -> str:
        return self.policy.team

    def relabel(self, inst: Instance, label: str) -> None:
        """Set the label (the pass's own view of it follows: several checks may mark one instance)."""
        if label != self.labels.get(inst.id):
            self.client.set_label(inst.id, label or f"instance {inst.id}")
            self.labels[inst.id] = label

    def mark(self, inst: Instance, kind: str, value: str | None) -> None:
        current = self.labels.get(inst.id)
        if marks(current).get(kind) == value:
            return
        self.relabel(inst, with_mark(current, kind, value) if value is not None else without_mark(current, kind))

    def stop(self, inst: Instance) -> None:
        self.client.stop(inst.id)
        self.statuses[inst.id] = "stopped"

    def start(self, inst: Instance) -> None:
        self.client.start(inst.id)
        self.statuses[inst.id] = "loading"

    @property
    def at(self) -> float:
        return self.reading.read_at or time.time()


class Guard:
    def __init__(self, *, log: BudgetLog, keys: KeyLookup, connect: ClientFactory, alerter: Alerter,
                 actor: Actor, workers: int = WORKERS) -> None:
        self.log, self.keys, self.connect, self.alerter, self.actor = log, keys, connect, alerter, actor
        self.workers = workers

    def run(self, policies: Sequence[TeamPolicy]) -> list[TeamOutcome]:
        """One pass over the teams, several at once (each team has its own key and so its own rate limits)."""
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(policies)))) as pool:
            return list(pool.map(self.team, policies))

    def team(self, policy: TeamPolicy) -> TeamOutcome:
        outcome = TeamOutcome(policy.team)
        try:
            key = self.keys.team_key(policy.team)
        except KeyProblem as err:
            outcome.errors.append(f"team {policy.team}: {err}")
            return outcome
        if not key:
            outcome.errors.append(f"no Vast key for team {policy.team}: {missing_key_hint(policy.team)} (the key acts "
                                  "in the team's account, with instance_read, instance_write and billing_read)")
            return outcome
        try:
            with self.connect(key) as client:
                reading, listing, _ = team_spend(client, timezone=policy.timezone, kinds=policy.kinds)
                outcome.reading = reading
                if reading.status != "known":
                    outcome.errors.append(f"the spend of team {policy.team} is unknown ({reading.reason}); nothing "
                                          "was judged: fix that and run the guard again")
                    return outcome
                state = _Pass(policy, client, reading, listing, set(self.log.guard_keys(policy.team)), outcome)
                self._judge(state)
        except VastError as err:
            outcome.errors.append(f"team {policy.team}: {err}; run the guard again (what it did so far stands, and "
                                  "it finishes the rest)")
        return outcome

    # --- budgets ---------------------------------------------------------------------------------------------

    def _judge(self, s: _Pass) -> None:
        pause_for: list[tuple[float, str]] = []
        for read in s.reading.windows:
            budget = s.policy.budget(read.kind)
            if budget is None:
                continue
            committed = read.spent + read.storage_to_end
            share = committed / budget if budget > 0 else Decimal(1)
            s.outcome.note(f"{read.key}: spent {dollars(read.spent)}, committed {dollars(committed)} of "
                           f"{dollars(budget)} ({percent(share)})")
            for threshold in crossed(committed, budget, s.policy.thresholds):
                self._crossing(s, read.key, threshold, budget, read.spent, committed)
            if committed >= budget and s.policy.action == "pause":
                if guard_key(s.team, read.key, "resume") in s.known:
                    s.outcome.note(f"{read.key}: over budget, but resumed on the record: not paused again")
                else:
                    pause_for.append((read.end, read.key))
        pause_key = max(pause_for)[1] if pause_for else None
        if pause_key is not None:
            self._pause(s, pause_key)
        self._lift(s, pause_key)
        if s.policy.idle is not None:
            self._idle(s)

    def _crossing(self, s: _Pass, window_key: str, threshold: Decimal, budget: Decimal, spent: Decimal,
                  committed: Decimal) -> None:
        name = f"crossing-{threshold.normalize()}"
        record = Crossing(team=s.team, window=window_key, threshold=threshold, budget=budget, spent=spent,
                          committed=committed, at=s.at, by=self.actor)
        kind = _kind_of(window_key)
        if threshold >= 1:
            then = ("pausing the team: its running instances are being stopped (disks kept)"
                    if s.policy.action == "pause" else "alert only (vast-budget-enforcement.action)")
            alert = Alert(team=s.team, kind="budget", title=f"{s.team} has spent its {kind} budget",
                          text=f"{dollars(committed)} committed ({dollars(spent)} spent, the rest its disks bill by "
                               f"the window's end) of {dollars(budget)} in {window_key}; {then}")
        else:
            alert = Alert(team=s.team, kind="warning",
                          title=f"{s.team} at {percent(committed / budget)} of its {kind} budget",
                          text=f"{dollars(committed)} committed ({dollars(spent)} spent) of {dollars(budget)} in "
                               f"{window_key}; the warning level is {percent(threshold)}")
        claim = guard_key(s.team, window_key, name)
        if self.log.claim(s.team, window_key, name, record):
            s.outcome.note(f"{window_key}: crossed {percent(threshold)}: alerting")
            self._deliver(s, window_key, name, alert)
            return
        # Claimed before. Delivered, or being delivered by a guard running now, or lost to a webhook that failed:
        # only a claim older than RETRY_AFTER and never delivered is sent again, each retry a claim of its own.
        if claim not in s.known or guard_key(s.team, window_key, f"{name}.sent") in s.known:
            return
        if s.at - self.log.read(claim, Crossing).at < RETRY_AFTER:
            return
        attempts = sum(1 for k in s.known if k.startswith(claim[:-len(".json")] + ".retry-"))
        if attempts < MAX_ALERT_ATTEMPTS and self.log.claim(s.team, window_key, f"{name}.retry-{attempts + 1}",
                                                            record):
            self._deliver(s, window_key, name, alert)

    def _deliver(self, s: _Pass, window_key: str, name: str, alert: Alert) -> None:
        if self.alerter.send(alert):
            self.log.claim(s.team, window_key, f"{name}.sent", Crossing.model_validate(
                {"team": s.team, "window": window_key, "threshold": 0, "budget": 0, "spent": 0, "committed": 0,
                 "at": s.at, "by": self.actor}))

    # --- pause and lift --------------------------------------------------------------------------------------

    def _pause(self, s: _Pass, pause_key: str) -> None:
        read = next(w for w in s.reading.windows if w.key == pause_key)
        budget = s.policy.budget(read.kind) or Decimal(0)
        record = Pause(team=s.team, window=pause_key, reason=f"committed spend reached the {_kind_of(pause_key)} "
                       f"budget {dollars(budget)}", budget=budget, committed=read.spent + read.storage_to_end,
                       at=s.at, by=self.actor)
        if self.log.claim(s.team, pause_key, "pause", record):
            s.outcome.note(f"{pause_key}: paused (recorded)")
        running = [i for i in s.listing if s.statuses[i.id] in ("running", "loading", "created")]
        stopped = 0
        for inst in running:
            try:
                s.mark(inst, PAUSED, pause_key)
                s.stop(inst)
                self._recorded(s, inst, "stop", "pause", pause_key)
                stopped += 1
            except (VastError, LabelTooLongError) as err:
                s.outcome.errors.append(f"instance {inst.id} of team {s.team} not stopped for the pause ({err}); "
                                        "run the guard again to finish the pause")
        if running:
            s.outcome.note(f"{pause_key}: stopped {stopped} of {len(running)} running instance(s)")

    def _lift(self, s: _Pass, pause_key: str | None) -> None:
        current = {w.key for w in s.reading.windows}
        for inst in s.listing:
            mark = marks(s.labels[inst.id]).get(PAUSED)
            if mark is None or mark == pause_key:
                continue
            over = mark not in current
            resumed = guard_key(s.team, mark, "resume") in s.known
            if not (over or resumed):
                continue
            try:
                if pause_key is not None:
                    s.mark(inst, PAUSED, pause_key)  # paused again in the new window: stays stopped
                    continue
                if s.statuses[inst.id] == "stopped":
                    s.start(inst)
                    self._recorded(s, inst, "start", "lift" if over else "resume", mark)
                s.mark(inst, PAUSED, None)
                s.outcome.note(f"instance {inst.id}: pause for {mark} lifted ({'window over' if over else 'resumed'})")
            except (VastError, LabelTooLongError) as err:
                s.outcome.errors.append(f"instance {inst.id} of team {s.team}: the pause for {mark} could not be "
                                        f"lifted ({err}); run the guard again")

    def _recorded(self, s: _Pass, inst: Instance, action: str, reason: str, window_key: str | None) -> None:
        at = s.client.last_server_time or s.at
        self.log.record_action(InstanceAction.model_validate({
            "team": s.team, "instance_id": inst.id, "action": action, "reason": reason, "at": at,
            "window": window_key, "stack": stack_of(inst.label), "by": self.actor}))

    # --- idle GPUs ---------------------------------------------------------------------------------------------

    def _idle(self, s: _Pass) -> None:
        idle = s.policy.idle
        if idle is None:
            return
        for inst in s.listing:
            since_text = marks(s.labels[inst.id]).get(IDLE)
            try:
                if s.statuses[inst.id] != "running" or inst.gpu_util is None or inst.gpu_util >= idle.max_gpu_util:
                    s.mark(inst, IDLE, None)
                    continue
                if since_text is None:
                    s.mark(inst, IDLE, f"{int(s.at)}")
                    continue
                since = float(since_text)
                if s.at - since < idle.minutes * 60:
                    continue
                self._idle_action(s, inst, since)
            except (VastError, LabelTooLongError, ValueError) as err:
                s.outcome.errors.append(f"instance {inst.id} of team {s.team}: idle check failed ({err}); run the "
                                        "guard again")

    def _idle_action(self, s: _Pass, inst: Instance, since: float) -> None:
        idle = s.policy.idle
        assert idle is not None
        name = f"idle-{inst.id}-{int(since)}"
        began = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC")
        record = Crossing(team=s.team, window="idle", threshold=Decimal(str(idle.max_gpu_util)), budget=Decimal(0),
                          spent=Decimal(0), committed=Decimal(0), at=s.at, by=self.actor)
        if idle.action == "stop":
            s.stop(inst)
            self._recorded(s, inst, "stop", "idle", None)
            s.mark(inst, IDLE, None)
            s.outcome.note(f"instance {inst.id}: idle since {began}: stopped")
        if self.log.claim(s.team, "idle", name, record):
            done = "stopped (disk kept)" if idle.action == "stop" else "reported (vast-budget-enforcement.idle)"
            self.alerter.send(Alert(
                team=s.team, kind="idle", title=f"{s.team}: instance {inst.id} is idle",
                text=f"GPU under {percent(Decimal(str(idle.max_gpu_util)))} since {began} ({idle.minutes} min or "
                     f"more); {done}"))


def _kind_of(window_key: str) -> str:
    parsed = parse_window_key(window_key)
    return "daily" if parsed is None or parsed[0] == "day" else "monthly"


# --- resume ---------------------------------------------------------------------------------------------------


def resume(policy: TeamPolicy, *, log: BudgetLog, keys: KeyLookup, connect: ClientFactory, actor: Actor,
           reason: str, alerter: Alerter) -> TeamOutcome:
    """Lift the team's pause now, on the record: the guard then leaves the team unpaused until the window resets."""
    outcome = TeamOutcome(policy.team)
    try:
        key = keys.team_key(policy.team)
    except KeyProblem as err:
        outcome.errors.append(f"team {policy.team}: {err}")
        return outcome
    if not key:
        outcome.errors.append(f"no Vast key for team {policy.team}: {missing_key_hint(policy.team)}")
        return outcome
    try:
        with connect(key) as client:
            listing = client.list_instances()
            at = client.last_server_time or time.time()
            now = datetime.fromtimestamp(at, UTC)
            current = {window(kind, now, policy.timezone).key for kind in policy.kinds}
            paused = {m for i in listing if (m := marks(i.label).get(PAUSED))}
            for window_key in sorted((paused & current) | {w for w in current if log.has(policy.team, w, "pause")}):
                log.claim(policy.team, window_key, "resume",
                          Resume(team=policy.team, window=window_key, reason=reason, at=at, by=actor))
                outcome.note(f"{window_key}: resumed by {actor.who} ({reason})")
            for inst in listing:
                mark = marks(inst.label).get(PAUSED)
                if mark is None:
                    continue
                if inst.actual_status == "stopped":
                    client.start(inst.id)
                    log.record_action(InstanceAction.model_validate({
                        "team": policy.team, "instance_id": inst.id, "action": "start", "reason": "resume",
                        "at": client.last_server_time or at, "window": mark, "stack": stack_of(inst.label),
                        "by": actor}))
                client.set_label(inst.id, without_mark(inst.label, PAUSED) or f"instance {inst.id}")
                outcome.note(f"instance {inst.id}: started and unmarked")
    except VastError as err:
        outcome.errors.append(f"team {policy.team}: {err}; run `vastguard resume {policy.team}` again (what it "
                              "did so far stands)")
        return outcome
    if not outcome.lines:
        outcome.note("no pause to lift")
    else:
        alerter.send(Alert(team=policy.team, kind="resumed", title=f"{policy.team} resumed",
                           text=f"the budget pause was lifted by {actor.who}: {reason}"))
    return outcome
