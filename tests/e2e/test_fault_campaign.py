"""A seeded fault-injection campaign through the real engine (issue 8).

Each run is one team's whole cycle on the emulator: `pulumi up` of a random fleet, one to three changes (count
up or down, stop or start through the declaration, a GPU change that replaces), sometimes a `preview` or a
`refresh` on the way, then `pulumi destroy`. Every step runs under one or two faults injected through the
emulator's control plane: 429 storms with Retry-After (rules, or Vast's real rate limits), 5xx bursts (some
after the operation happened), dropped connections, latency spikes, offer-taken races on rent, instances that
never leave `loading` or end `exited`, and an emulator restart in the middle of the operation (stopped, then
started again on the same port from its state file). A fault may legitimately fail a step; the contract is what
follows: after a clean `pulumi up` (faults cleared) and `pulumi refresh`, the emulator holds exactly what the
stack says, no orphan, no duplicate, and `pulumi preview --expect-no-changes` passes (the provider's clock
outputs are outputs, not inputs, so a read does not make the preview show updates); after the destroy and a clean
one, nothing is left. At every step: never two live instances with one ownership tag, and a preview makes no
mutating call whatever the faults.

Runs are independent (each starts from an empty stack) and their plans come from `random.Random(f"{seed}:{run}")`,
so `--campaign-seed S --campaign-runs N` replays them. What the engine does in parallel, and so which call a
probabilistic fault hits, can differ between replays; the plan (fleets, changes, faults and their parameters)
cannot. `--campaign-runs N` runs a long campaign; the default is CI-sized.
"""

from __future__ import annotations

import random
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from engine import Engine
from tests.e2e.campaign import (
    GPU_CAPS,
    MUTATING_OPERATIONS,
    CampaignStack,
    Declaration,
    Group,
    Report,
    RestartableEmulator,
    convergence_problems,
    duplicate_tags,
    errors_of,
    publish,
    run_op,
    tail,
)

pytestmark = pytest.mark.engine

# Four runs arm every kind of fault (see forced_kinds) and take ~3 minutes on this 2-core machine when it is
# quiet (~40 s a run); `--campaign-runs N` runs a long campaign.
CI_RUNS = 4
TEAM = "data-science"
PROVISION_TIMEOUT = 5.0
MAX_INSTANCES = 4
GROUP_NAMES = ("infer", "train")
# Weighted towards what the provider calls: it reads instances through listings (`list`), `show` only in updates.
API_OPERATIONS = ("search", "create", "list", "list", "manage", "destroy", "show", "*")

FaultKind = Literal["rate_limit_429", "server_error_5xx", "dropped_connection", "latency_spike",
                    "offer_taken_race", "stuck_loading", "exited_on_start", "emulator_restart"]
FAULT_KINDS: tuple[FaultKind, ...] = ("rate_limit_429", "server_error_5xx", "dropped_connection", "latency_spike",
                                      "offer_taken_race", "stuck_loading", "exited_on_start", "emulator_restart")
RENT_FAULTS: tuple[FaultKind, ...] = ("offer_taken_race", "stuck_loading", "exited_on_start")
Op = Literal["up", "preview", "refresh", "destroy"]


# --- the plan -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    params: dict[str, Any]

    def describe(self) -> str:
        return f"{self.kind}({', '.join(f'{k}={v}' for k, v in self.params.items())})"


@dataclass(frozen=True)
class Step:
    op: Op
    declaration: Declaration | None
    change: str
    faults: tuple[Fault, ...]

    def describe(self) -> str:
        what = self.declaration.describe() if self.declaration else "-"
        return f"{self.op} [{self.change}: {what}] under {', '.join(f.describe() for f in self.faults) or 'nothing'}"


@dataclass(frozen=True)
class RunPlan:
    provision_delay: float
    steps: tuple[Step, ...]
    final: Declaration


def random_declaration(rng: random.Random) -> Declaration:
    names = rng.sample(GROUP_NAMES, rng.choice([1, 1, 2]))
    return Declaration({n: Group(gpu=rng.choice(sorted(GPU_CAPS)), count=rng.randint(1, 2)) for n in names})


def mutate(rng: random.Random, decl: Declaration) -> tuple[str, Declaration, bool]:
    """A change a team would make: (what, the new declaration, whether it rents new instances)."""
    groups = dict(decl.groups)
    choices: list[str] = ["replace_gpu", "add_group" if len(groups) < len(GROUP_NAMES) else "scale_down"]
    if decl.total() < MAX_INSTANCES:
        choices += ["scale_up", "scale_up"]
    if any(g.count > 0 for g in groups.values()):
        choices += ["scale_down", "stop" if any(g.state == "running" for g in groups.values()) else "start"]
    if any(g.state == "stopped" for g in groups.values()):
        choices += ["start", "start"]
    change = rng.choice(choices)
    name = rng.choice(sorted(groups))
    group = groups[name]
    rents = False
    if change == "scale_up":
        groups[name] = Group(group.gpu, group.count + 1, group.state)
        rents = True
    elif change == "scale_down":
        name = rng.choice(sorted(n for n, g in groups.items() if g.count > 0) or [name])
        groups[name] = Group(groups[name].gpu, max(0, groups[name].count - rng.randint(1, 2)), groups[name].state)
    elif change == "stop":
        name = rng.choice(sorted(n for n, g in groups.items() if g.state == "running"))
        groups[name] = Group(groups[name].gpu, groups[name].count, "stopped")
    elif change == "start":
        name = rng.choice(sorted(n for n, g in groups.items() if g.state == "stopped"))
        groups[name] = Group(groups[name].gpu, groups[name].count, "running")
    elif change == "replace_gpu":
        other = next(g for g in sorted(GPU_CAPS) if g != group.gpu)
        groups[name] = Group(other, group.count, group.state)
        rents = group.count > 0
    else:  # add_group
        name = next(n for n in GROUP_NAMES if n not in groups)
        groups[name] = Group(rng.choice(sorted(GPU_CAPS)), 1)
        rents = True
    while sum(g.count for g in groups.values()) > MAX_INSTANCES:
        biggest = max(sorted(groups), key=lambda n: groups[n].count)
        groups[biggest] = Group(groups[biggest].gpu, groups[biggest].count - 1, groups[biggest].state)
    return f"{change} {name}", Declaration(groups), rents


def random_fault(rng: random.Random, kind: FaultKind) -> Fault:
    operation = rng.choice(API_OPERATIONS)
    if kind == "rate_limit_429":
        if rng.random() < 0.2:  # Vast's own token buckets, on the emulator's clock (the client paces itself)
            return Fault(kind, {"via": "rate_limits"})
        # Up to 0.9 for 20 calls: enough to outlast the client's five attempts now and then.
        return Fault(kind, {"via": "rule", "operation": operation, "probability": round(rng.uniform(0.4, 0.9), 2),
                            "count": rng.randint(3, 20), "retry_after": rng.choice(["0.2", "1", "2"])})
    if kind in ("server_error_5xx", "dropped_connection"):
        phase = rng.choice(["before", "after"]) if operation in MUTATING_OPERATIONS else "before"
        # 500 is not retried by the client, 502/503/504 are: both fail operations, differently.
        status = rng.choice([500, 500, 502, 503, 504]) if kind == "server_error_5xx" else 0
        return Fault(kind, {"operation": operation, "status": status, "phase": phase,
                            "probability": round(rng.uniform(0.4, 0.9), 2), "count": rng.randint(1, 8)})
    if kind == "latency_spike":
        return Fault(kind, {"latency_ms": rng.randint(100, 500)})
    if kind == "offer_taken_race":
        return Fault(kind, {"modes": [rng.choice(["reject", "late"]) for _ in range(rng.randint(1, 2))]})
    if kind == "emulator_restart":
        # Mostly a blip the client's retries ride out; one in four outlasts them (~7.5 s of backoff), so calls in
        # flight fail: a rent whose answer and whose check both got lost among them.
        down_for = rng.uniform(0.2, 1.5) if rng.random() < 0.75 else rng.uniform(6.0, 10.0)
        return Fault(kind, {"after_requests": rng.randint(1, 3), "down_for": round(down_for, 2)})
    return Fault(kind, {})  # stuck_loading, exited_on_start: the next instance rented


def random_faults(rng: random.Random, *, rents: bool, forced: tuple[FaultKind, ...] = ()) -> tuple[Fault, ...]:
    weights = [3 if (rents and k in RENT_FAULTS) else (0.5 if k in RENT_FAULTS else 2) for k in FAULT_KINDS]
    kinds: list[FaultKind] = list(forced)
    for _ in range(rng.choice([1, 1, 2]) - len(forced) // 2):
        kind = rng.choices(FAULT_KINDS, weights)[0]
        if kind not in kinds:
            kinds.append(kind)
    return tuple(random_fault(rng, k) for k in kinds)


def forced_kinds(run: int) -> tuple[FaultKind, ...]:
    """Two kinds each run must inject, in rotation, so that any four consecutive runs arm every kind."""
    return FAULT_KINDS[(2 * run) % len(FAULT_KINDS)], FAULT_KINDS[(2 * run + 1) % len(FAULT_KINDS)]


def plan_run(rng: random.Random, forced: tuple[FaultKind, ...]) -> RunPlan:
    """The run's steps. The forced kinds go to the first `up`, which always rents (as rent faults need)."""
    decl = random_declaration(rng)
    steps = [Step("up", decl, "create", random_faults(rng, rents=True, forced=forced))]
    for _ in range(rng.randint(1, 3)):
        change, decl, rents = mutate(rng, decl)
        if rng.random() < 0.3:
            steps.append(Step("preview", decl, change, random_faults(rng, rents=False)))
        steps.append(Step("up", decl, change, random_faults(rng, rents=rents)))
        if rng.random() < 0.2:
            steps.append(Step("refresh", decl, "refresh", random_faults(rng, rents=False)))
    steps.append(Step("destroy", None, "destroy", random_faults(rng, rents=False)))
    return RunPlan(provision_delay=rng.choice([0.0, 0.5, 1.0]), steps=tuple(steps), final=decl)


# --- executing it ---------------------------------------------------------------------------------------------


@dataclass
class Tally:
    armed: Counter[str] = field(default_factory=Counter)
    fired: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.armed.update(other.armed)
        self.fired.update(other.fired)


@dataclass
class Campaign:
    seed: int
    stack: CampaignStack
    runs_done: int = 0
    steps_done: int = 0
    steps_failed: int = 0
    survived: Tally = field(default_factory=Tally)
    log: list[str] = field(default_factory=list)

    @property
    def emulator(self) -> RestartableEmulator:
        return self.stack.emulator

    def arm(self, faults: tuple[Fault, ...]) -> tuple[dict[tuple[int, int], str], int, Fault | None]:
        """Inject the step's faults; returns the rule keys by kind, the races armed and the restart to do."""
        control = self.emulator.control
        rules: dict[tuple[int, int], str] = {}
        races = 0
        restart: Fault | None = None
        gen = self.emulator.generation
        for fault in faults:
            p = fault.params
            if fault.kind == "rate_limit_429" and p["via"] == "rate_limits":
                control.config(rate_limits=True)
            elif fault.kind == "rate_limit_429":
                rule = control.fault(operation=p["operation"], status=429, probability=p["probability"],
                                     count=p["count"], headers={"Retry-After": p["retry_after"]},
                                     body="API requests too frequent endpoint threshold=1.0")["fault"]
                rules[(gen, rule["id"])] = fault.kind
            elif fault.kind in ("server_error_5xx", "dropped_connection"):
                rule = control.fault(operation=p["operation"], status=p["status"], phase=p["phase"],
                                     probability=p["probability"], count=p["count"])["fault"]
                rules[(gen, rule["id"])] = fault.kind
            elif fault.kind == "latency_spike":
                control.config(latency_ms=p["latency_ms"])
            elif fault.kind == "offer_taken_race":
                for mode in p["modes"]:
                    control.call("POST", "/races", {"offer_id": None, "mode": mode})
                races += len(p["modes"])
            elif fault.kind in ("stuck_loading", "exited_on_start"):
                outcome = "stuck_loading" if fault.kind == "stuck_loading" else "exited"
                rule = control.fault(operation="provision", outcome=outcome, count=1)["fault"]
                rules[(gen, rule["id"])] = fault.kind
            else:
                restart = fault
        return rules, races, restart

    def run_step(self, step: Step) -> tuple[Tally, list[str]]:
        """One faulted step; returns what fired and the invariant violations seen (not the step's failure)."""
        stack, emu = self.stack, self.emulator
        if step.op in ("up", "preview"):
            stack.set_fleet(step.declaration)
        emu.begin_step()
        lost_before = emu.lost_offers()
        rules, races, restart = self.arm(step.faults)
        op = {"up": stack.up, "preview": stack.preview, "refresh": stack.refresh, "destroy": stack.destroy}[step.op]
        outcome = run_op(op, emu, restart_after_requests=restart.params["after_requests"] if restart else None,
                         down_for=restart.params["down_for"] if restart else 0.0)
        requests = emu.step_requests()
        tally = Tally()
        for fault in step.faults:
            tally.armed[fault.kind] += 1
        for key, rule in emu.step_rules():
            if key_kind := rules.get((key, rule.id)):
                tally.fired[key_kind] += rule.fired
        if any(f.kind == "rate_limit_429" for f in step.faults):
            tally.fired["rate_limit_429"] = sum(1 for r in requests if r.status == 429)
        if any(f.kind == "latency_spike" for f in step.faults):
            tally.fired["latency_spike"] = len(requests)
        if races:
            tally.fired["offer_taken_race"] = races - emu.pending_races()
        if restart is not None:
            tally.fired["emulator_restart"] = 1
            tally.fired[f"emulator_restart ({outcome.restarted})"] = 1
        emu.clear_faults()
        emu.replace_offers(emu.lost_offers() - lost_before)

        self.steps_done += 1
        status = "ok" if outcome.result.returncode == 0 else "FAILED"
        if outcome.result.returncode != 0:
            self.steps_failed += 1
        self.log.append(f"  {step.describe()} -> {status} in {outcome.seconds:.1f}s; fired {dict(tally.fired)}")
        if outcome.result.returncode != 0:
            self.log.append("    " + errors_of(outcome.result).replace("\n", "\n    "))
        violations = [f"two live instances with one ownership tag after `{step.op}`: {t}"
                      for t in duplicate_tags(stack)]
        if step.op == "preview":
            mutating = [f"{r.method} {r.path}" for r in requests if r.operation in MUTATING_OPERATIONS]
            if mutating:
                violations.append(f"preview made mutating calls: {mutating}")
        return tally, violations

    def converge(self, declared: Declaration | None) -> list[str]:
        """The contract, with faults cleared: clean up (or destroy) + refresh, then exactly what is declared."""
        stack = self.stack
        problems: list[str] = []
        clean = stack.up() if declared is not None else stack.destroy()
        if clean.returncode != 0:
            problems.append(f"the clean {'up' if declared else 'destroy'} failed:\n{tail(clean)}")
        refreshed = stack.refresh()
        if refreshed.returncode != 0:
            problems.append(f"refresh failed:\n{tail(refreshed)}")
        problems += convergence_problems(stack, declared)
        if declared is not None:
            preview = stack.preview("--expect-no-changes", "--diff")
            if preview.returncode != 0:
                problems.append(f"`preview --expect-no-changes` after refresh planned changes:\n{tail(preview, 40)}")
        return problems

    def run(self, run: int, plan: RunPlan) -> list[str]:
        self.emulator.control.config(provision_delay=plan.provision_delay)
        self.log.append(f"run {run} (seed {self.seed}), provision delay {plan.provision_delay}s:")
        tally = Tally()
        problems: list[str] = []
        for step in plan.steps:
            if step.op == "destroy":
                problems += self.converge(plan.final)
                if problems:
                    break
            step_tally, violations = self.run_step(step)
            tally.add(step_tally)
            problems += violations
            if problems:
                break
        else:
            problems += self.converge(None)
        if not problems:
            self.survived.add(tally)
            self.runs_done += 1
        return problems


def test_fault_campaign(engine: Engine, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                        request: pytest.FixtureRequest) -> None:
    seed: int = request.config.getoption("--campaign-seed")
    runs: int = request.config.getoption("--campaign-runs") or CI_RUNS
    emulator = RestartableEmulator(tmp_path / "emulator-state.json", seed=7, provision_delay=0.0)
    started = time.monotonic()
    campaign: Campaign | None = None
    failure: str | None = None
    try:
        stack = CampaignStack.create(engine, tmp_path, emulator, team=TEAM, provision_timeout=PROVISION_TIMEOUT)
        campaign = Campaign(seed=seed, stack=stack)
        for run in range(runs):
            plan = plan_run(random.Random(f"{seed}:{run}"), forced_kinds(run))
            try:
                problems = campaign.run(run, plan)
            except Exception:
                problems = [f"the harness failed:\n{traceback.format_exc()}"]
            if problems:
                failure = (
                    f"fault campaign: run {run} of seed {seed} broke the contract; replay with `pytest "
                    f"tests/e2e/test_fault_campaign.py --campaign-seed {seed} --campaign-runs {run + 1}`\n"
                    + "\n".join(f"- {p}" for p in problems)
                    + "\nwhat happened:\n" + "\n".join(campaign.log[-40:])
                )
                break
    finally:
        emulator.stop()
        if campaign is not None:
            _publish(request.config, tmp_path_factory, campaign, runs, time.monotonic() - started, failure)
    if failure:
        pytest.fail(failure, pytrace=False)
    assert campaign is not None and campaign.runs_done == runs
    # The campaign exercised what it claims to: four runs or more arm every kind of fault (forced_kinds), and
    # faults did hit calls.
    assert runs < 4 or set(campaign.survived.armed) >= set(FAULT_KINDS), campaign.survived.armed
    assert sum(campaign.survived.fired[k] for k in FAULT_KINDS) > 0, campaign.survived.fired


def _publish(config: pytest.Config, factory: pytest.TempPathFactory, campaign: Campaign, runs: int,
             seconds: float, failure: str | None) -> None:
    fired, armed = campaign.survived.fired, campaign.survived.armed
    lines = [
        f"seed {campaign.seed}: {campaign.runs_done}/{runs} runs survived ({campaign.steps_done} faulted steps, "
        f"{campaign.steps_failed} of them failed as a fault may make them, then converged) in {seconds:.0f}s",
        f"{'fault':<34}{'steps armed':>12}{'injected+survived':>19}",
    ]
    kinds = [*FAULT_KINDS, *sorted(k for k in fired if k not in FAULT_KINDS)]
    lines += [f"{k:<34}{armed.get(k, 0) if k in FAULT_KINDS else '':>12}{fired.get(k, 0):>19}" for k in kinds]
    lines.append("injected = 429/5xx/dropped responses served, API calls delayed, races and provisioning faults "
                 "that hit a rent, restarts")
    if failure:
        lines.append(f"FAILED: {failure.splitlines()[0]}")
    report = Report(title="fault-injection campaign", seed=campaign.seed, lines=lines, data={
        "runs_requested": runs, "runs_survived": campaign.runs_done, "faulted_steps": campaign.steps_done,
        "failed_steps": campaign.steps_failed, "seconds": round(seconds, 1), "faults_armed": dict(armed),
        "faults_injected_and_survived": dict(fired), "failure": failure, "log": campaign.log,
    })
    publish(config, report, factory.getbasetemp() / "fault_campaign.json")


def test_create_failing_after_renting_leaves_no_orphan(engine: Engine, tmp_path: Path) -> None:
    """The hazard the campaign's 5xx bursts are after, pinned: Vast errs (past the client's retries) while a
    create waits for the instance it rented, so the create fails and the engine records nothing; the next
    deploy no longer declares that instance. What was rented must not be left billing outside the state."""
    emulator = RestartableEmulator(tmp_path / "emulator-state.json", seed=7, provision_delay=2.0)
    try:
        stack = CampaignStack.create(engine, tmp_path, emulator, team=TEAM, provision_timeout=30)
        stack.set_fleet(Declaration({"infer": Group("RTX_3090", 1)}))
        emulator.begin_step()

        def fail_status_reads_once_rented() -> None:
            deadline = time.monotonic() + 120
            while not emulator.server.market.requests.records("create") and time.monotonic() < deadline:
                time.sleep(0.01)
            emulator.control.fault(operation="list", status=500, count=20)

        outcome = run_op(stack.up, emulator, before=fail_status_reads_once_rented)
        assert outcome.result.returncode != 0, "the injected 500s did not fail the create"
        assert "injected fault" in errors_of(outcome.result)
        assert len(emulator.server.market.requests.records("create")) == 1
        emulator.clear_faults()

        scaled_down = Declaration({"infer": Group("RTX_3090", 0)})
        stack.set_fleet(scaled_down)
        assert stack.up().returncode == 0
        assert stack.refresh().returncode == 0
        assert convergence_problems(stack, scaled_down) == []
        assert [i.destroyed_at is not None for i in stack.ever_rented()] == [True]
    finally:
        emulator.stop()
