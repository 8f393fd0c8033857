"""Machinery shared by the fault-injection campaign (test_fault_campaign.py) and the crash trials (test_crash.py).

- `RestartableEmulator`: the Vast.ai emulator with a state file, which can be stopped and started again on the
  same port (what a provider sees when Vast's API goes away for a moment), and which keeps the request log and
  the fault rules of a step across such a restart so the step's faults can be counted.
- `CampaignStack`: one team's stack on it, with the stack's state read through `pulumi stack export`
  (validated with pydantic) and the team's instances as the marketplace sees them.
- `Declaration`: a small fleet declaration the campaign mutates, and `convergence_problems`, the contract
  checked after every run: the emulator holds exactly what the stack says, counts equal the declaration,
  no orphan, no duplicate.
- `Report`: what a campaign injected and survived, printed, added to pytest's terminal summary (through the
  `pytest_terminal_summary` hook in tests/e2e/conftest.py) and written as JSON to pytest's basetemp.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from emulator import EmulatorServer
from emulator.faults import FaultRule, RequestRecord
from emulator.models import Account
from emulator.models import Instance as EmulatedInstance
from emulator.testing import Control
from engine import Engine
from providers.provisioning import tag_of
from vastguard.workspace import Workspace

IMAGE = "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime"
# GPU -> the $/h cap used for it: both have a dozen or more matching offers in the seed-7 catalogue.
GPU_CAPS: dict[str, float] = {"RTX_3090": 0.30, "RTX_4090": 0.90}
MUTATING_OPERATIONS = frozenset({"create", "manage", "destroy"})

# --- the emulator, restartable ------------------------------------------------------------------------------


class RestartableEmulator:
    """An `EmulatorServer` with a state file that `restart()` stops and starts again on the same port.

    Requests and fault rules live in the server's memory only, so a restart would lose the ones of the
    current step; `begin_step()` / `step_requests()` / `step_rules()` keep them across restarts.
    """

    def __init__(self, state_file: Path, *, seed: int, provision_delay: float) -> None:
        self.state_file = state_file
        self.server = EmulatorServer(port=0, seed=seed, state_file=state_file, provision_delay=provision_delay,
                                     rate_limits=False, flush_interval=0.05).start()
        self.port = self.server.port
        self.url = self.server.url
        self.control = Control(self.url)
        self.restarts = 0
        self._generation = 0
        self._old_requests: list[RequestRecord] = []
        self._old_rules: list[tuple[int, FaultRule]] = []

    def restart(self, down_for: float) -> None:
        """Stop (the state file is flushed), stay down `down_for` seconds, start again from the state file."""
        old = self.server
        old.stop()
        self._old_requests += old.market.requests.records()
        self._old_rules += [(self._generation, r) for r in old.market.faults.rules()]
        time.sleep(down_for)
        self.server = EmulatorServer(port=self.port, state_file=self.state_file, flush_interval=0.05).start()
        if not self.server.restored:
            raise RuntimeError(f"the emulator did not resume from {self.state_file}")
        self._generation += 1
        self.restarts += 1

    def stop(self) -> None:
        self.server.stop()

    @property
    def generation(self) -> int:
        """How many restarts so far: fault rule ids are only unique within one generation."""
        return self._generation

    def begin_step(self) -> None:
        self.server.market.requests.clear()
        self._old_requests = []
        self._old_rules = []

    def step_requests(self) -> list[RequestRecord]:
        return [*self._old_requests, *self.server.market.requests.records()]

    def step_rules(self) -> list[tuple[int, FaultRule]]:
        """Every fault rule of the step with how often it fired, keyed by the generation that held it."""
        return [*self._old_rules, *((self._generation, r) for r in self.server.market.faults.rules())]

    def clear_faults(self) -> None:
        """Back to a healthy market: no fault rules, no pending races, no latency, no rate limits."""
        self.control.call("DELETE", "/faults")
        self.control.call("DELETE", "/races")
        self.control.config(latency_ms=0, rate_limits=False)

    def pending_races(self) -> int:
        races: list[Any] = self.control.call("GET", "/races")["races"]
        return len(races)

    def lost_offers(self) -> set[int]:
        """Offers taken by 'someone else' (races): gone from the market for good."""
        market = self.server.market
        with market.lock:
            return {oid for oid, inst in market.state.taken.items() if inst is None}

    def replace_offers(self, offer_ids: set[int]) -> None:
        """Put an offer with the same terms back for each lost one, so a long campaign never runs dry."""
        market = self.server.market
        for oid in sorted(offer_ids):
            with market.lock:
                lost = market.state.offers[oid]
            self.control.call("POST", "/offers", {
                "gpu_name": lost.gpu_name, "num_gpus": lost.num_gpus, "dph_base": str(lost.dph_base),
                "storage_cost": str(lost.storage_cost), "reliability": lost.reliability,
                "geolocation": lost.geolocation, "disk_space": lost.disk_space,
            })

    def wait_for_requests(self, count: int, done: Callable[[], bool], *, timeout: float) -> None:
        """Until the step has logged `count` API requests, `done()` says the operation ended, or `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            if len(self.server.market.requests.records()) + len(self._old_requests) >= count:
                return
            time.sleep(0.02)


# --- the stack's state ----------------------------------------------------------------------------------------


class StateResource(BaseModel):
    """One resource of `pulumi stack export` (apitype.ResourceV3), the fields the checks read."""

    model_config = ConfigDict(extra="ignore")

    urn: str
    type: str
    id: str | None = None
    delete: bool = False
    outputs: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


class PendingOperation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    resource: StateResource
    type: str


class Deployment(BaseModel):
    model_config = ConfigDict(extra="ignore")

    resources: list[StateResource] | None = None
    pending_operations: list[PendingOperation] | None = None


class StackExport(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: int
    deployment: Deployment

    def instances(self) -> list[StateResource]:
        return [r for r in self.deployment.resources or [] if r.type.endswith("vastai:Instance")]


@dataclass
class CampaignStack:
    """One team's stack (a fresh workspace and state backend) on a restartable emulator."""

    team: str
    ws: Workspace
    emulator: RestartableEmulator
    account: Account
    api_key: str = field(repr=False)

    @classmethod
    def create(cls, engine: Engine, root: Path, emulator: RestartableEmulator, *, team: str,
               provision_timeout: float) -> CampaignStack:
        api_key = f"{team}-{secrets.token_hex(16)}"
        account = emulator.server.create_account(api_key=api_key, balance=100_000, username=team)
        ws = Workspace.create(engine, root / "ws", state_dir=root / "state",
                              extra_env={"PULUMI_HOME": str(root / "pulumi-home")})
        ws.init_team(team, api_key=api_key, vast_url=emulator.url)
        # The provider gives up on an instance that is not running by this deadline and destroys it; short, so
        # an instance stuck in `loading` costs the campaign seconds, not the default 15 minutes.
        ws.cli.run("config", "set", "vastai:provisionTimeout", f"{provision_timeout:g}", stack=team)
        return cls(team=team, ws=ws, emulator=emulator, account=account, api_key=api_key)

    def live(self) -> list[EmulatedInstance]:
        """The team's instances that exist on the marketplace now (destroyed ones excluded)."""
        return self.emulator.server.market.all_instances(self.account)[0]

    def ever_rented(self) -> list[EmulatedInstance]:
        market = self.emulator.server.market
        with market.lock:
            return [i.model_copy() for i in market.state.instances.values() if i.account_id == self.account.id]

    def export(self) -> StackExport:
        out = self.ws.cli.run("stack", "export", stack=self.team).stdout
        return StackExport.model_validate_json(out)

    def set_fleet(self, declaration: Declaration | None) -> None:
        self.ws.set_fleet(self.team, declaration.fleet() if declaration else {})

    def up(self) -> subprocess.CompletedProcess[str]:
        return self.ws.up(self.team, policy=False, check=False, timeout=600)

    def preview(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.ws.cli.run("preview", *extra, stack=self.team, check=False, timeout=600)

    def refresh(self) -> subprocess.CompletedProcess[str]:
        return self.ws.cli.run("refresh", "--yes", "--skip-preview", stack=self.team, check=False, timeout=600)

    def destroy(self) -> subprocess.CompletedProcess[str]:
        return self.ws.destroy(self.team, check=False)

    def cancel(self) -> subprocess.CompletedProcess[str]:
        """Remove the lock a killed update leaves in the DIY backend (the documented recovery step)."""
        return self.ws.cli.run("cancel", "--yes", stack=self.team, check=False)

    def pulumi_argv(self, *args: str) -> list[str]:
        return [str(self.ws.cli.engine.pulumi), *args, "--non-interactive", "--stack", self.team]


def tail(result: subprocess.CompletedProcess[str], lines: int = 25) -> str:
    """The end of a command's output: Pulumi prints no decrypted secret, and the provider redacts keys."""
    text = (result.stdout + "\n" + result.stderr).strip().splitlines()
    return "\n".join(text[-lines:])


def errors_of(result: subprocess.CompletedProcess[str], lines: int = 6) -> str:
    """Why a command failed, in a few lines: Pulumi's `error:` lines, else the end of its output."""
    text = (result.stdout + "\n" + result.stderr).strip().splitlines()
    errors = [line.strip() for line in text if "error:" in line.lower()]
    return "\n".join(errors[:lines]) if errors else "\n".join(text[-lines:])


# --- the declaration and the contract -------------------------------------------------------------------------

DesiredState = Literal["running", "stopped"]


@dataclass(frozen=True)
class Group:
    gpu: str
    count: int
    state: DesiredState = "running"

    def entry(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "count": self.count, "image": IMAGE, "disk_gb": 16,
                "max_dph": GPU_CAPS[self.gpu], "state": self.state}


@dataclass(frozen=True)
class Declaration:
    groups: Mapping[str, Group]

    def fleet(self) -> dict[str, Any]:
        return {name: g.entry() for name, g in sorted(self.groups.items())}

    def instances(self) -> dict[str, Group]:
        """Instance name -> its group, as the program expands groups (`<group>-<index>`)."""
        return {f"{name}-{i}": g for name, g in sorted(self.groups.items()) for i in range(g.count)}

    def total(self) -> int:
        return sum(g.count for g in self.groups.values())

    def describe(self) -> str:
        return ", ".join(f"{n}={g.count}x{g.gpu}/{g.state}" for n, g in sorted(self.groups.items())) or "(empty)"


def convergence_problems(stack: CampaignStack, declared: Declaration | None, *,
                         allow_pending_creates: bool = False) -> list[str]:
    """The contract after a clean `pulumi up` (or `destroy`) and `refresh`: every problem found, or [].

    `allow_pending_creates`: after a killed update, Pulumi keeps a `creating` record for every create it did not
    see finish, through later `up`s and `refresh`es, until `refresh --clear-pending-creates`; the provider adopted
    those instances (or they were never rented), which the orphan check below verifies, so the record is stale
    bookkeeping rather than a problem."""
    export = stack.export()
    live = stack.live()
    expected = declared.instances() if declared else {}
    problems: list[str] = []
    pending = [p for p in export.deployment.pending_operations or []
               if not (allow_pending_creates and p.type == "creating")]
    if pending:
        problems.append("pending operations left in the state: "
                        + ", ".join(f"{p.type} {p.resource.name}" for p in pending))
    resources = export.instances()
    doomed = [r.name for r in resources if r.delete]
    if doomed:
        problems.append(f"resources still pending deletion in the state: {doomed}")
    names = [r.name for r in resources if not r.delete]
    duplicated_names = sorted(n for n, c in Counter(names).items() if c > 1)
    if duplicated_names:
        problems.append(f"one name held twice in the state: {duplicated_names}")
    if set(names) != set(expected):
        problems.append(f"state holds {sorted(names)}, the declaration {sorted(expected)}")

    state_ids = {r.id for r in resources if r.id}
    live_ids = {str(i.id) for i in live}
    orphans = sorted(live_ids - state_ids)
    ghosts = sorted(state_ids - live_ids)
    if orphans:
        problems.append("orphans (live, not in the state): " + "; ".join(
            f"{i.id} {i.label!r} {i.actual_status}" for i in live if str(i.id) in orphans))
    if ghosts:
        problems.append(f"ids in the state that the marketplace does not hold: {ghosts}")

    tags = [tag_of(i.label) for i in live]
    if None in tags:
        problems.append("live instances without an ownership tag: "
                        + ", ".join(str(i.id) for i, t in zip(live, tags, strict=True) if t is None))
    for what, keys in (("ownership tag", [t for t in tags if t]),
                       ("logical name", [t.split("#", 1)[0] for t in tags if t])):
        dupes = sorted(k for k, c in Counter(keys).items() if c > 1)
        if dupes:
            problems.append(f"duplicates: two live instances with one {what}: {dupes}")

    by_id = {str(i.id): i for i in live}
    for res in resources:
        inst = by_id.get(res.id or "")
        group = expected.get(res.name)
        if inst is None or group is None:
            continue
        tag = tag_of(inst.label) or ""
        if not tag.startswith(f"vg:{stack.team}/{res.name}#"):
            problems.append(f"{res.name}: state id {inst.id} carries the tag {tag!r}")
        if inst.offer.gpu_name != group.gpu.replace("_", " "):
            problems.append(f"{res.name}: declared {group.gpu}, instance {inst.id} is a {inst.offer.gpu_name}")
        if inst.actual_status != group.state:
            problems.append(f"{res.name}: declared {group.state}, instance {inst.id} is {inst.actual_status}")
    return problems


def duplicate_tags(stack: CampaignStack) -> list[str]:
    """Two live instances with one full ownership tag (one incarnation rented twice): wrong at any moment,
    even mid-failure (a replacement and its predecessor share a name, never a tag)."""
    counts = Counter(t for t in (tag_of(i.label) for i in stack.live()) if t)
    return sorted(t for t, c in counts.items() if c > 1)


# --- running an operation with the emulator restarting under it ------------------------------------------------


@dataclass
class OpOutcome:
    result: subprocess.CompletedProcess[str]
    seconds: float
    restarted: Literal["no", "mid-op", "after-op"] = "no"


def run_op(op: Callable[[], subprocess.CompletedProcess[str]], emulator: RestartableEmulator, *,
           restart_after_requests: int | None = None, down_for: float = 1.0,
           before: Callable[[], None] | None = None) -> OpOutcome:
    """Run `op` (a blocking Pulumi command); with `restart_after_requests`, restart the emulator once the
    step has logged that many API requests (so the restart lands inside the operation, wherever its calls
    are), or right after the operation if it made fewer. `before` runs in this thread while `op` runs (a
    fault armed at the right moment), before any restart."""
    holder: list[subprocess.CompletedProcess[str]] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            holder.append(op())
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=target, name="pulumi-op", daemon=True)
    thread.start()
    restarted: Literal["no", "mid-op", "after-op"] = "no"
    if before is not None:
        before()
    if restart_after_requests is not None:
        emulator.wait_for_requests(restart_after_requests, lambda: not thread.is_alive(), timeout=600)
        restarted = "mid-op" if thread.is_alive() else "after-op"
        emulator.restart(down_for)
    thread.join()
    if errors:
        raise errors[0]
    return OpOutcome(result=holder[0], seconds=time.monotonic() - started, restarted=restarted)


# --- reports --------------------------------------------------------------------------------------------------

REPORTS = pytest.StashKey[list["Report"]]()


@dataclass
class Report:
    """One campaign's tally, for the terminal summary and the JSON file."""

    title: str
    seed: int
    data: dict[str, Any]
    lines: list[str]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps({"title": self.title, "seed": self.seed, **self.data}, indent=2, sort_keys=True))


def publish(config: pytest.Config, report: Report, json_path: Path) -> None:
    report.write(json_path)
    report.lines.append(f"JSON: {json_path}")
    print(f"\n== {report.title} ==")
    for line in report.lines:
        print(line)
    config.stash.setdefault(REPORTS, []).append(report)


def terminal_summary(reporter: Any, config: pytest.Config) -> None:
    """Called by tests/e2e/conftest.py's `pytest_terminal_summary`."""
    for report in config.stash.get(REPORTS, []):
        reporter.write_sep("=", f"vastguard: {report.title}")
        for line in report.lines:
            reporter.write_line(line)


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: time.monotonic() - started
