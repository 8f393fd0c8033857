"""SIGKILL of `pulumi up` / `pulumi destroy` at random points, then recovery: the declared instances, no orphan,
no duplicate, nothing rented twice.

The recovery is the documented one (README, "When `pulumi up` is killed"): `pulumi cancel --yes` removes the lock
the killed update left in the file backend, then `pulumi up` converges: a create interrupted after renting
adopts its instance through the ownership tag, a delete interrupted after releasing finds it already gone. A
killed `pulumi destroy` is finished by running it again, or undone by `refresh` + `up` (after a killed destroy
the state can still list instances that are gone, and only a refresh tells the engine so).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from emulator.bodies import ConfigBody
from engine import Engine
from tests.e2e.campaign import (
    CampaignStack,
    Declaration,
    Group,
    Report,
    RestartableEmulator,
    convergence_problems,
    errors_of,
    publish,
)
from tests.e2e.conftest import TeamEnv
from tests.e2e.test_fleet import ONE_NOTEBOOK

pytestmark = pytest.mark.engine

TEAM = "data-science"
MAX_INSTANCES = 3
Kind = Literal["create", "replace", "scale_down", "destroy"]
MUTATIONS = frozenset({"create", "destroy"})


OUTLIVE_LIMIT = 30.0
"""Seconds the run's other processes may take to exit once `pulumi` is gone: the provider and language hosts
notice within a few seconds (two missed checks of the engine's port), the program and the pack with them; the
rest is headroom for a loaded machine."""


def kill_engine(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL `pulumi` alone, as a CI job's timeout or the OOM killer does: nothing tells its language host,
    program, policy pack or provider processes."""
    proc.kill()
    proc.wait()


def _session(sid: int) -> list[str]:
    """The live processes of session `sid`: the run's `pulumi` was started as its leader, and the engine starts
    each plugin in a process group of its own, so the session (not the group) is what holds the whole run."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(f"{stat.parent.name} {(stat.parent / 'cmdline').read_bytes()[:200]!r}")
        except (OSError, IndexError, ValueError):
            continue
    return found


def wait_for_the_rest(proc: subprocess.Popen[bytes], *, limit: float = OUTLIVE_LIMIT) -> float:
    """Seconds until every other process of the run has exited by itself; fails naming any that outlives
    `limit` seconds (then kills them): a provider that lived on could still be renting, and every host that lived
    on was a process left on the machine."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if not _session(proc.pid):
            return time.monotonic() - started
        time.sleep(0.1)
    survivors = _session(proc.pid)
    for line in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split(" ", 1)[0]), signal.SIGKILL)
    raise AssertionError(f"{len(survivors)} process(es) of the killed run outlived it by {limit:.0f}s: "
                         + "; ".join(survivors))


def test_the_check_fails_when_a_process_of_the_killed_run_lives_on() -> None:
    """What the trials would report of a language host that kept running after its engine (as ours did for five
    minutes): a child of the killed process that does not exit by itself."""
    proc = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
    deadline = time.monotonic() + 30
    while len(_session(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_engine(proc)
    with pytest.raises(AssertionError, match=r"1 process\(es\) of the killed run outlived it by 1s: .*sleep"):
        wait_for_the_rest(proc, limit=1.0)
    deadline = time.monotonic() + 10
    while _session(proc.pid) and time.monotonic() < deadline:  # and they were killed
        time.sleep(0.05)
    assert _session(proc.pid) == []


def test_killed_up_after_renting_adopts_instead_of_renting_again(team_env: Callable[[str], TeamEnv]) -> None:
    env = team_env("data-science")
    env.ws.set_fleet("data-science", ONE_NOTEBOOK)
    # Instances take a while to boot, so the kill lands while the provider is waiting for `running`.
    env.emulator.market.configure(ConfigBody(provision_delay=3))

    cli = env.ws.cli
    proc = subprocess.Popen(
        [str(cli.engine.pulumi), "up", "--yes", "--skip-preview", "--non-interactive", "--stack", env.team],
        cwd=cli.cwd, env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while len(env.live()) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    rented = {i.id for i in env.live()}
    assert len(rented) == 2, "the first up never got as far as renting"
    kill_engine(proc)
    assert {i.actual_status for i in env.live()} != {"running"}, "the kill landed after the instances were up"
    wait_for_the_rest(proc)

    env.emulator.market.configure(ConfigBody(provision_delay=0))
    # A killed update leaves the DIY backend's lock behind; `pulumi cancel` removes it (the CI recovery step).
    env.ws.cli.run("cancel", "--yes", stack=env.team)
    result = env.ws.up("data-science", policy=False, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    live = env.live()
    assert {i.id for i in live} == rented, "the recovery rented again instead of adopting what was rented"
    assert len(env.emulator.market.requests.records("create")) == 2
    assert {i.actual_status for i in live} == {"running"}
    env.ws.destroy("data-science")
    assert env.live() == []


# --- randomised trials ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """Where in the operation the SIGKILL lands, anchored on what the operation does rather than on a clock (on a
    shared machine the same operation takes 4 s or 10 s): `startup` after `jitter` seconds, while the engine and
    the program start (before any API call); `request` after the operation's `request`-th API call plus `jitter`
    (the calls are the checks' searches, the adoption listing, rents, status polls, releases); `tail` after as
    many calls as the calibrated operation made (its last, usually) plus `jitter`, while the engine records the
    outcome and exits."""

    where: Literal["startup", "request", "tail"]
    jitter: float
    request: int = 0

    def describe(self) -> str:
        if self.where == "startup":
            return f"startup + {self.jitter:.2f}s"
        return f"{self.where}: API call {self.request} + {self.jitter:.2f}s"


@dataclass(frozen=True)
class Profile:
    """An operation as calibrated on this machine: its API calls, and seconds from start to first / after last."""

    requests: int
    to_first: float
    after_last: float

    def draw(self, rng: random.Random) -> KillPoint:
        roll = rng.random()
        if roll < 0.2:
            return KillPoint("startup", rng.uniform(0.0, self.to_first))
        if roll < 0.85:
            return KillPoint("request", rng.uniform(0.0, 0.15), rng.randint(1, self.requests))
        return KillPoint("tail", rng.uniform(0.0, self.after_last * 1.5), self.requests)


@dataclass
class Trial:
    number: int
    kind: Kind
    before: Declaration | None
    target: Declaration | None
    point: KillPoint = KillPoint("startup", 0.0)
    # `--parallel 1` makes the engine rent and release one instance at a time, so that kills fall between them
    # too (by default they all go at once, within milliseconds on the emulator); CI may run either way.
    serial: bool = False
    killed_at: str = ""
    recovery: str = ""
    outlived: float = 0.0  # seconds the run's other processes took to exit after the kill

    def describe(self) -> str:
        before = self.before.describe() if self.before else "(nothing)"
        target = self.target.describe() if self.target else "(destroyed)"
        serial = " --parallel 1" if self.serial else ""
        return (f"trial {self.number}: {self.kind}{serial} {before} -> {target}, SIGKILL at {self.point.describe()} "
                f"({self.killed_at}; the rest exited {self.outlived:.1f}s later); recovery: {self.recovery}")


def plan_trial(rng: random.Random, number: int, current: Declaration | None) -> Trial:
    if current is None or current.total() == 0:
        return Trial(number, "create", current, Declaration({"crash": Group("RTX_3090", rng.randint(2, 3))}))
    group = current.groups["crash"]
    kinds: list[Kind] = ["replace", "scale_down", "destroy"]
    if group.count < MAX_INSTANCES:
        kinds.append("create")
    kind = rng.choice(kinds)
    if kind == "create":
        target = Group(group.gpu, min(MAX_INSTANCES, group.count + rng.randint(1, 2)))
    elif kind == "replace":
        target = Group("RTX_4090" if group.gpu == "RTX_3090" else "RTX_3090", group.count)
    elif kind == "scale_down":
        target = Group(group.gpu, group.count - rng.randint(1, group.count))
    else:
        return Trial(number, kind, current, None)
    return Trial(number, kind, current, Declaration({"crash": target}))


def _mutations_needed(trial: Trial) -> int:
    """Rents and releases the operation makes when nothing interrupts it."""
    before = trial.before.instances() if trial.before else {}
    target = trial.target.instances() if trial.target else {}
    if trial.kind == "replace":
        return 2 * len(target)
    return len(set(target) ^ set(before))


def test_sigkill_trials(engine: Engine, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                        request: pytest.FixtureRequest) -> None:
    trials: int = request.config.getoption("--crash-trials")
    seed: int = request.config.getoption("--campaign-seed")
    rng = random.Random(f"crash:{seed}")
    emulator = RestartableEmulator(tmp_path / "emulator-state.json", seed=7, provision_delay=0.5)
    started = time.monotonic()
    log: list[str] = []
    kill_points: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    outlived: list[float] = []
    converged = 0
    try:
        stack = CampaignStack.create(engine, tmp_path, emulator, team=TEAM, provision_timeout=60)
        # What each operation does on this machine, so that kill points can span all of it.
        profiles = _calibrate(stack)
        log.append("profiles: " + ", ".join(f"{k} {p}" for k, p in profiles.items()))
        current: Declaration | None = None
        for number in range(trials):
            trial = plan_trial(rng, number, current)
            trial.point = profiles[trial.kind].draw(rng)
            trial.serial = rng.random() < 0.4
            problems, current = _run_trial(stack, trial, rng, kill_points)
            kinds[trial.kind] += 1
            outlived.append(trial.outlived)
            log.append(trial.describe())
            if problems:
                pytest.fail(
                    f"crash trial {number} of seed {seed} did not converge (replay with `pytest "
                    f"tests/e2e/test_crash.py --campaign-seed {seed} --crash-trials {number + 1}`):\n"
                    + "\n".join(f"- {p}" for p in problems) + "\n" + "\n".join(log[-8:]),
                    pytrace=False,
                )
            converged += 1
        # The stale `creating` records the kills left are dropped the documented way, and nothing else is pending.
        pending = len(stack.export().deployment.pending_operations or [])
        log.append(f"pending creates left by the kills: {pending}")
        cleared = stack.ws.cli.run("refresh", "--yes", "--skip-preview", "--clear-pending-creates",
                                   stack=TEAM, check=False)
        assert cleared.returncode == 0, errors_of(cleared)
        assert convergence_problems(stack, current) == []
        final = stack.destroy()
        assert final.returncode == 0, errors_of(final)
        assert stack.live() == []
    finally:
        emulator.stop()
        seconds = time.monotonic() - started
        lines = [f"seed {seed}: {converged}/{trials} SIGKILL trials converged in {seconds:.0f}s",
                 "by operation: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
                 "kill landed: " + ", ".join(f"{k} {v}" for k, v in sorted(kill_points.items())),
                 f"the killed runs' other processes exited at most {max(outlived, default=0.0):.1f}s after `pulumi`"
                 f" (limit {OUTLIVE_LIMIT:.0f}s)"]
        publish(request.config, Report(title="crash-safety trials", seed=seed, lines=lines, data={
            "trials_requested": trials, "by_operation": dict(kinds), "kill_points": dict(kill_points),
            "outlived_seconds_max": round(max(outlived, default=0.0), 1),
            "seconds": round(seconds, 1), "log": log}), tmp_path_factory.getbasetemp() / "crash_trials.json")
    assert converged == trials
    # With 20 trials the kills must have hit both kinds of operation, and mid-way through some of them.
    assert trials < 10 or (kinds["create"] and kinds["destroy"] + kinds["scale_down"]), kinds
    assert trials < 10 or kill_points["between its rents/releases"] + kill_points[
        "after its last rent/release, before it finished"], kill_points


def _profile(stack: CampaignStack, op: Callable[[], subprocess.CompletedProcess[str]]) -> Profile:
    stack.emulator.begin_step()
    clock = stack.emulator.server.market.clock
    started = clock.now()
    result = op()
    ended = clock.now()
    assert result.returncode == 0, errors_of(result)
    moments = [r.timestamp - started for r in stack.emulator.step_requests()]
    assert moments, "the operation made no API call"
    return Profile(requests=len(moments), to_first=min(moments), after_last=ended - started - max(moments))


def _calibrate(stack: CampaignStack) -> dict[Kind, Profile]:
    stack.set_fleet(Declaration({"crash": Group("RTX_3090", 2)}))
    create = _profile(stack, stack.up)
    destroy = _profile(stack, stack.destroy)
    assert stack.live() == []
    # A replacement makes a create's calls and then a destroy's.
    replace = Profile(create.requests + destroy.requests, create.to_first, destroy.after_last)
    return {"create": create, "replace": replace, "scale_down": destroy, "destroy": destroy}


def _run_trial(stack: CampaignStack, trial: Trial, rng: random.Random, kill_points: Counter[str]
               ) -> tuple[list[str], Declaration | None]:
    """Start the operation, SIGKILL it at the trial's kill point, recover; the problems found and what is declared."""
    emu = stack.emulator
    emu.begin_step()
    rented_before = {i.id for i in stack.ever_rented()}
    if trial.kind == "destroy":
        argv = stack.pulumi_argv("destroy", "--yes", "--skip-preview", *(["--parallel", "1"] if trial.serial else []))
    else:
        stack.set_fleet(trial.target)
        argv = stack.pulumi_argv("up", "--yes", "--skip-preview", *(["--parallel", "1"] if trial.serial else []))
    cli = stack.ws.cli
    proc = subprocess.Popen(argv, cwd=cli.cwd, env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    point = trial.point
    if point.where != "startup":
        emu.wait_for_requests(point.request, lambda: proc.poll() is not None, timeout=120)
    try:
        proc.wait(timeout=point.jitter)
    except subprocess.TimeoutExpired:
        kill_engine(proc)
        # The provider may finish a call (or a rent) after the kill, until it notices: count what the killed run
        # did once all of it is gone.
        trial.outlived = wait_for_the_rest(proc)
        done = sum(1 for r in emu.step_requests() if r.operation in MUTATIONS)
        needed = _mutations_needed(trial)
        trial.killed_at = ("before its first rent/release" if done == 0
                           else "between its rents/releases" if done < needed
                           else "after its last rent/release, before it finished")
    else:
        trial.killed_at = "too late: it had finished"
    kill_points[trial.killed_at] += 1

    problems: list[str] = []
    cancelled = stack.cancel()
    if cancelled.returncode != 0 and "not locked" not in cancelled.stderr + cancelled.stdout:
        problems.append(f"`pulumi cancel` failed: {errors_of(cancelled)}")
    declared = trial.target
    if trial.kind == "destroy" and rng.random() < 0.5:
        trial.recovery = "destroy"
        recovered = stack.destroy()
    elif trial.kind == "destroy":
        trial.recovery = "refresh + up"
        declared = trial.before
        refreshed = stack.refresh()
        if refreshed.returncode != 0:
            problems.append(f"refresh failed: {errors_of(refreshed)}")
        recovered = stack.up()
    else:
        trial.recovery = "up"
        recovered = stack.up()
    if recovered.returncode != 0:
        problems.append(f"the recovery `{trial.recovery}` failed: {errors_of(recovered)}")
    problems += convergence_problems(stack, declared, allow_pending_creates=True)
    # Nothing rented twice: every instance rented during the trial (killed run and recovery) is one of those
    # now live; a create that was interrupted after renting must have adopted its instance, not replaced it.
    live_ids = {i.id for i in stack.live()}
    thrown_away = sorted({i.id for i in stack.ever_rented()} - rented_before - live_ids)
    if thrown_away:
        problems.append(f"rented during the trial and released again (rented twice): {thrown_away}")
    return problems, declared

