"""Write DIY-backend history shaped exactly like Pulumi 3.259's, for the reports' tests and bench/reports.py.

The shapes were copied from files the pinned engine wrote for a stack of `vastai:Instance` resources
(compact JSON, key order as Pulumi writes it, stack traces, provider references, secret `__provider`).
What a real run cannot give is control over time: here each operation's wall-clock times are chosen, and a
Vast clock of its own (the wall clock plus a skew that `advance` moves, or frozen at a moment, like an
emulator's virtual clock) dates what the provider records. The writer also keeps the ground truth of
what Vast would bill (`truth`), an oracle computed without any of the reports' code.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fleet.costs import money, storage_hourly
from fleet.instance import INSTANCE_TYPE

PULUMI_VERSION = "v3.259.0"
MAGIC = "ab35920a3077459b09dd1a3f7ddc28df4e3efc81b3240013bb6906688abc684d"
SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
_FRAMES = (
    "project:///program/fleet_program.py#27", "project:///program/fleet_program.py#32", None, None,
    "project:///../../../root/.cache/vastguard/engine/v3.259.0/bin/pulumi-language-python-exec#188",
    "project:///.venv/lib/python3.11/site-packages/pulumi/runtime/stack.py#253",
    "project:///.venv/lib/python3.11/site-packages/pulumi/runtime/stack.py#141",
    "project:///.venv/lib/python3.11/site-packages/pulumi/runtime/stack.py#270",
    "project:///../../../usr/lib/python3.11/asyncio/events.py#80",
    "project:///../../../usr/lib/python3.11/asyncio/base_events.py#1922",
    "project:///../../../usr/lib/python3.11/asyncio/base_events.py#607",
    "project:///../../../usr/lib/python3.11/asyncio/base_events.py#640",
)
STACK_TRACE = [{"sourcePosition": f} if f else {} for f in _FRAMES]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    """Go's time.Time JSON: nanoseconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def epoch(moment: datetime) -> float:
    return (moment - _EPOCH) / timedelta(seconds=1)


def nanos(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def ci_environment(*, author: str = "Ada Lovelace", author_email: str = "ada@example.com",
                   committer: str = "CI Bot", committer_email: str = "ci@example.com",
                   commit: str = "2dc9b7ff124a006e588c855bc86734e5c8146910", build: str | None = "42",
                   pull_request: str | None = None) -> dict[str, str]:
    """The `environment` Pulumi records for a CLI update in a GitHub checkout (on Actions unless build=None)."""
    env = {
        "exec.kind": "cli", "git.author": author, "git.author.email": author_email, "git.committer": committer,
        "git.committer.email": committer_email, "git.dirty": "false", "git.head": commit,
        "git.headName": "refs/heads/main", "pulumi.arch": "amd64", "pulumi.os": "linux",
        "pulumi.version": PULUMI_VERSION, "runtime.name": "python", "runtime.version": "3.11.7",
        "stack.environments": "[]", "updatePlan": "false", "vcs.kind": "github.com", "vcs.owner": "acme",
        "vcs.repo": "gpu-fleet", "vcs.root": ".",
    }
    if build is not None:
        env.update({"ci.build.id": f"98765{build}", "ci.build.number": build,
                    "ci.build.type": "pull_request" if pull_request else "push",
                    "ci.build.url": f"https://github.com/acme/gpu-fleet/actions/runs/98765{build}",
                    "ci.pr.headSHA": commit, "ci.system": "GitHub Actions"})
        if pull_request:
            env["ci.pr.number"] = pull_request
    return dict(sorted(env.items()))


@dataclass
class Rented:
    """One instance as the provider's outputs describe it. Times are set when an operation records it."""

    name: str
    instance_id: int
    gpu_name: str
    dph_total: float
    storage_cost: float = 0.15
    disk_gb: float = 32.0
    state: str = "running"
    num_gpus: int = 1
    created_at: datetime | None = None
    state_since: datetime | None = None
    seen_at: datetime | None = None
    local_seen_at: datetime | None = None
    wall_created: datetime | None = None
    wall_modified: datetime | None = None

    def rate(self) -> Decimal:
        if self.state == "running":
            return money(self.dph_total)
        return storage_hourly(self.storage_cost, self.disk_gb)

    def inputs(self, stack: str, team: str) -> dict[str, Any]:
        return {
            "__provider": {**SECRET_SIG, "ciphertext": "v1:L2Hzwo9S+A+p9rlN:cBv8Z/R5O9F8CgB+5sw28s+bTb+t4yg3EzH4M"},
            "disk_gb": self.disk_gb, "env": {}, "geolocation": None, "gpu_name": self.gpu_name,
            "image": "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime", "label": f"{team}/{self.name}",
            "max_dph": round(self.dph_total * 1.25, 3), "min_reliability": 0.95, "num_gpus": self.num_gpus,
            "onstart": None, "ownership_tag": f"vg:{stack}/{self.name}", "state": self.state, "team": team,
            "verified_only": True,
        }

    def outputs(self, stack: str, team: str, *, clock_fields: bool) -> dict[str, Any]:
        created = self.created_at or _EPOCH
        out: dict[str, Any] = {
            **self.inputs(stack, team),
            "dph_total": self.dph_total, "instance_id": self.instance_id, "machine_id": 40000 + self.instance_id % 997,
            "offer_id": 900000 + self.instance_id, "public_ip": f"203.0.113.{self.instance_id % 250}",
            "quote": {"dph_total": self.dph_total, "gpu_name": self.gpu_name, "matched": 12,
                      "offer_id": 900000 + self.instance_id, "quoted_at": created.isoformat(timespec="seconds"),
                      "storage_cost": self.storage_cost},
            "ssh_host": f"ssh{self.instance_id % 9}.vast.ai", "ssh_port": 20000 + self.instance_id % 10000,
            "start_date": epoch(created), "status": self.state, "storage_cost": self.storage_cost,
            "vast_label": f"{team}/{self.name} [vg:{stack}/{self.name}]",
        }
        if clock_fields:
            out["vast_created_at"] = epoch(created)
            out["vast_state_since"] = epoch(self.state_since or created)
            if self.seen_at is not None and self.local_seen_at is not None:
                out["vast_seen_at"] = epoch(self.seen_at)
                out["local_seen_at"] = epoch(self.local_seen_at)
        return dict(sorted(out.items()))


@dataclass
class StackWriter:
    """Stage changes (`rent`, `set_state`, `remove`), then `record` an operation: writes its history file and
    its full checkpoint, and dates the staged changes on the Vast clock the way the provider would.

    `clock_fields=False` writes outputs without the `vast_*` contract fields (today's provider);
    `compress=True` writes gzip like `PULUMI_DIY_BACKEND_GZIP=true`.
    """

    root: Path
    stack: str
    team: str
    project: str = "vastguard"
    clock_fields: bool = True
    compress: bool = False
    skew: timedelta = timedelta(0)
    frozen_at: datetime | None = None
    instances: dict[str, Rented] = field(default_factory=dict)
    truth: dict[int, list[tuple[datetime, Decimal | None]]] = field(default_factory=dict)
    _staged_new: list[str] = field(default_factory=list)
    _staged_state: list[str] = field(default_factory=list)
    _staged_gone: list[Rented] = field(default_factory=list)
    _stack_created: datetime | None = None
    _provider_id: str = "0fb412be-4f99-49eb-b850-ae45ac17b515"

    def vast(self, wall: datetime) -> datetime:
        return self.frozen_at if self.frozen_at is not None else wall + self.skew

    @property
    def history_dir(self) -> Path:
        return self.root / ".pulumi" / "history" / self.project / self.stack

    def rent(self, rented: Rented) -> Rented:
        self.instances[rented.name] = rented
        self._staged_new.append(rented.name)
        return rented

    def set_state(self, name: str, state: str) -> None:
        self.instances[name].state = state
        self._staged_state.append(name)

    def remove(self, name: str) -> Rented:
        gone = self.instances.pop(name)
        self._staged_gone.append(gone)
        return gone

    def _urn(self, type_: str, name: str) -> str:
        return f"urn:pulumi:{self.stack}::{self.project}::{type_}::{name}"

    def _resources(self) -> list[dict[str, Any]]:
        stack_urn = self._urn("pulumi:pulumi:Stack", f"{self.project}-{self.stack}")
        created = rfc3339(self._stack_created or _EPOCH)
        provider_urn = self._urn("pulumi:providers:pulumi-python", "default")
        resources: list[dict[str, Any]] = [
            {"urn": stack_urn, "custom": False, "type": "pulumi:pulumi:Stack",
             "outputs": {"estimated_cost": {"daily": 1.0, "hourly": 0.04, "monthly": 30.4}, "team": self.team},
             "created": created, "modified": created, "sourcePosition": _FRAMES[5], "stackTrace": STACK_TRACE[5:]},
            {"urn": provider_urn, "custom": True, "id": self._provider_id, "type": "pulumi:providers:pulumi-python",
             "inputs": {"vastguard:team": self.team}, "outputs": {"vastguard:team": self.team},
             "created": created, "modified": created},
        ]
        for inst in self.instances.values():
            inputs = inst.inputs(self.stack, self.team)
            resources.append({
                "urn": self._urn(INSTANCE_TYPE, inst.name), "custom": True, "id": str(inst.instance_id),
                "type": INSTANCE_TYPE, "inputs": inputs,
                "outputs": inst.outputs(self.stack, self.team, clock_fields=self.clock_fields),
                "parent": stack_urn, "provider": f"{provider_urn}::{self._provider_id}",
                "propertyDependencies": {k: [] for k in inputs},
                "created": rfc3339(inst.wall_created or _EPOCH), "modified": rfc3339(inst.wall_modified or _EPOCH),
                "sourcePosition": _FRAMES[0], "stackTrace": STACK_TRACE,
            })
        return resources

    def record(self, *, start: datetime, end: datetime | None = None, kind: str = "update",
               result: str = "succeeded", message: str = "", environment: dict[str, str] | None = None,
               refresh: bool = False) -> Path:
        """Write one operation that ran on the wall clock from `start` to `end` (default +40 s).

        Creates and state changes happen mid-operation, deletes at its end (Pulumi deletes last); `refresh`
        means every instance was read (`pulumi refresh` or `up --refresh`), so each records a clock sample.
        """
        end = end or start + timedelta(seconds=40)
        mid = start + (end - start) / 2
        self._stack_created = self._stack_created or start
        touched = set(self.instances) if refresh else set()
        for name in self._staged_new:
            inst = self.instances[name]
            inst.created_at = inst.state_since = self.vast(mid)
            inst.wall_created = inst.wall_modified = mid
            touched.add(name)
            self.truth[inst.instance_id] = [(self.vast(mid), inst.rate())]
        for name in self._staged_state:
            inst = self.instances[name]
            inst.state_since, inst.wall_modified = self.vast(mid), mid
            touched.add(name)
            self.truth[inst.instance_id].append((self.vast(mid), inst.rate()))
        for gone in self._staged_gone:
            self.truth[gone.instance_id].append((self.vast(end), None))
        for name in touched:
            self.instances[name].seen_at, self.instances[name].local_seen_at = self.vast(mid), mid
        self._staged_new, self._staged_state, self._staged_gone = [], [], []

        latest: dict[str, Any] = {
            "manifest": {"time": rfc3339(end), "magic": MAGIC, "version": PULUMI_VERSION},
            "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:u0zOlcZTI5M=:v1:BkW3oKzN42eknrLn"}},
        }
        if kind != "destroy" or self.instances:
            latest["resources"] = self._resources()
        latest["metadata"] = {}
        checkpoint = {"version": 3, "checkpoint": {"stack": f"organization/{self.project}/{self.stack}",
                                                   "latest": latest}}
        info: dict[str, Any] = {
            "kind": kind, "startTime": int(epoch(start)), "message": message,
            "environment": environment if environment is not None else ci_environment(),
            "config": {"vastguard:team": self.team}, "version": 0, "result": result, "endTime": int(epoch(end)),
            "resourceChanges": {"same": len(self.instances) + 2},
        }
        meta = self.root / ".pulumi" / "meta.yaml"
        if not meta.exists():
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text("version: 1\n")
        self.history_dir.mkdir(parents=True, exist_ok=True)
        stacks_dir = self.root / ".pulumi" / "stacks" / self.project
        stacks_dir.mkdir(parents=True, exist_ok=True)
        suffix = ".json.gz" if self.compress else ".json"
        stem = f"{self.stack}-{nanos(end) + 1}"
        history_path = self.history_dir / f"{stem}.history{suffix}"
        self._write(history_path, info)
        self._write(self.history_dir / f"{stem}.checkpoint{suffix}", checkpoint)
        self._write(stacks_dir / f"{self.stack}{suffix}", checkpoint)
        return history_path

    def _write(self, path: Path, document: dict[str, Any]) -> None:
        data = json.dumps(document, separators=(",", ":")).encode()
        path.write_bytes(gzip.compress(data, mtime=0) if self.compress else data)


def billed(truth: dict[int, list[tuple[datetime, Decimal | None]]], *, start: datetime, end: datetime
           ) -> dict[int, Decimal]:
    """What Vast would bill per instance over [start, end): each rate from its moment to the next event.

    Written independently of reports/costing.py on purpose: the tests compare the two."""
    out: dict[int, Decimal] = {}
    for instance_id, events in truth.items():
        total = Decimal(0)
        for (at, rate), following in zip(events, [*events[1:], (end, None)], strict=True):
            if rate is None:
                continue
            lo, hi = max(at, start), min(following[0], end)
            if hi > lo:
                total += rate * Decimal((hi - lo) // timedelta(microseconds=1)) / Decimal(3_600_000_000)
        out[instance_id] = total
    return out
