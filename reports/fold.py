"""Fold one stack's history into its audit trail and the billing timeline of each instance. Pure: no I/O.

Pulumi's history is a sequence of full checkpoints, one per update, refresh or destroy (failed ones too).
Diffing consecutive checkpoints tells which instances each operation created, changed and deleted; an
instance is identified by its Vast instance id, because a replacement keeps the resource name (URN) but
rents a new instance.

When things happened is the subtle part. Vast bills by its own clock; Pulumi records wall-clock times
(`startTime`/`endTime` in whole seconds, per-resource `created`/`modified` and the checkpoint's write time
in nanoseconds). Against the real Vast the two clocks agree to within seconds; against the emulator, whose
clock is virtual, they do not. So every event time is taken, in order of preference, from:

1. the Vast clock as the provider recorded it in the resource outputs: `vast_created_at` (rent confirmed;
   else Vast's own `start_date`) and `vast_state_since` (the current `state` took effect) -> basis `vast`;
2. Pulumi's wall-clock timestamps (resource `created`/`modified`, the checkpoint write time for deletes,
   whose resource is gone from state) mapped onto Vast's clock -> basis `update` (an estimate; reports count
   how many costs rest on one). The mapping uses the provider's clock samples (`vast_seen_at` with the
   provider's own `local_seen_at`): with a `running` Vast clock (real Vast, or an emulator whose virtual time
   runs with the wall clock plus a skew) a wall time is shifted by the latest offset; with a `frozen` one (an
   emulator whose virtual time only moves when a test advances it) everything in an operation that sampled
   the clock happened at the sampled moment.

Between creation and the start of the first recorded state (image pull) Vast bills storage only. An
interruptible instance runs at its bid; while outbid (`outbid` in its outputs, found by a refresh) it bills
storage only, from the moment the refresh that found it dates (the second way: exact on a frozen clock when
the refresh runs at that moment, an estimate otherwise, counted as such).

The budget guard stops and starts instances behind Pulumi's back (a pause, its lift, an idle GPU); it records
each at Vast's time (`fleet.budget_log.InstanceAction`), and the fold applies those records in time order
between the checkpoints, so a pause costs exactly what Vast billed even when no refresh saw it. A start is
costed from the start call (Vast bills the GPU from `running`, seconds to minutes later: an upper bound).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from fleet.budget_log import InstanceAction
from fleet.costs import hourly as hourly_rate
from fleet.instance import InstanceRecord
from reports.models import (
    Actor,
    AuditEvent,
    ComponentName,
    InstanceChange,
    InstanceTimeline,
    Segment,
    StackFold,
    TimeBasis,
)
from reports.pulumi_state import HistoryEntry, InstanceResource, Snapshot, UpdateRecord

VastClock = Literal["running", "frozen"]
WATCHED_FIELDS = ("state", "status", "outbid", "bid", "dph_total", "storage_cost", "disk_gb", "gpu_name", "num_gpus",
                  "label")
# A provider call belongs to an update if its local time falls in the update's window; Pulumi truncates
# startTime/endTime to whole seconds, hence the slack.
_WINDOW_SLACK = timedelta(seconds=2)


def _epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def actor_of(environment: dict[str, str]) -> Actor:
    env = environment
    return Actor(
        author=env.get("git.author"), author_email=env.get("git.author.email"),
        committer=env.get("git.committer"), committer_email=env.get("git.committer.email"),
        ci_system=env.get("ci.system"), ci_build=env.get("ci.build.number") or env.get("ci.build.id"),
        ci_build_url=env.get("ci.build.url"), ci_build_type=env.get("ci.build.type"),
        ci_pr=env.get("ci.pr.number"), exec_kind=env.get("exec.kind"), exec_agent=env.get("exec.agent"),
    )


def _commit_of(env: dict[str, str]) -> str | None:
    # On a pull request CI checks out a merge commit; the PR's head is what a person wrote.
    if env.get("ci.build.type") == "pull_request" and env.get("ci.pr.headSHA"):
        return env["ci.pr.headSHA"]
    return env.get("git.head")


def _repository_of(env: dict[str, str]) -> str | None:
    parts = [env.get("vcs.kind"), env.get("vcs.owner"), env.get("vcs.repo")]
    return "/".join(p for p in parts if p) or None


def component_of(props: InstanceRecord) -> ComponentName:
    """Running bills the GPU (on demand at its price, interruptible at its bid); stopped or outbid only storage."""
    if props.state != "running" or props.outbid:
        return "storage"
    return "interruptible" if props.interruptible else "running"


def rate_of(props: InstanceRecord, component: ComponentName) -> Decimal | None:
    """$/h for the component, through fleet.costs; None when a price it needs is unknown."""
    if component in ("running", "interruptible"):
        if props.dph_total is None:
            return None
        return hourly_rate(state="running", dph_total=props.dph_total, storage_cost=0, disk_gb=0)
    if props.storage_cost is None or props.disk_gb is None:
        return None
    return hourly_rate(state="stopped", dph_total=0, storage_cost=props.storage_cost, disk_gb=props.disk_gb)


@dataclass
class _Clock:
    """Maps Pulumi wall-clock times onto Vast's clock from the most recent sample the provider recorded."""

    model: VastClock = "running"
    offset: timedelta | None = None
    sample: datetime | None = None
    sampled_now: bool = False

    def observe(self, snapshot: Snapshot, record: UpdateRecord) -> None:
        self.sampled_now = False
        start = (record.start_time - _WINDOW_SLACK).timestamp()
        end = ((record.end_time or snapshot.written_at or record.start_time) + _WINDOW_SLACK).timestamp()
        best: tuple[float, float] | None = None
        for res in snapshot.instances:
            vast, local = res.outputs.vast_seen_at, res.outputs.local_seen_at
            if vast is None or local is None or not start <= local <= end:
                continue
            if best is None or local > best[1]:
                best = (vast, local)
        if best is not None:
            self.sample, self.sampled_now = _epoch(best[0]), True
            self.offset = self.sample - _epoch(best[1])

    def to_vast(self, wall: datetime) -> datetime:
        if self.model == "frozen" and self.sampled_now and self.sample is not None:
            return self.sample
        return wall + self.offset if self.offset is not None else wall


@dataclass
class _Open:
    """An instance rented at the last checkpoint, with its billing segments so far."""

    name: str
    instance_id: int | None
    team: str
    resource: InstanceResource
    props: InstanceRecord
    component: ComponentName
    hourly: Decimal | None
    since: datetime
    since_basis: TimeBasis
    segments: list[Segment] = field(default_factory=list)

    def switch(self, at: datetime, basis: TimeBasis, component: ComponentName, hourly: Decimal | None) -> None:
        at = max(at, self.since)
        if at > self.since:
            self.segments.append(Segment(start=self.since, end=at, component=self.component, hourly=self.hourly,
                                         start_basis=self.since_basis, end_basis=basis))
        self.component, self.hourly, self.since, self.since_basis = component, hourly, at, basis

    def close(self, at: datetime, basis: TimeBasis) -> None:
        at = max(at, self.since)
        self.segments.append(Segment(start=self.since, end=at, component=self.component, hourly=self.hourly,
                                     start_basis=self.since_basis, end_basis=basis))

    def timeline(self, project: str, stack: str, *, still_open: bool) -> InstanceTimeline:
        segments = list(self.segments)
        if still_open:
            segments.append(Segment(start=self.since, end=None, component=self.component, hourly=self.hourly,
                                    start_basis=self.since_basis))
        return InstanceTimeline(project=project, stack=stack, team=self.team, name=self.name,
                                instance_id=self.props.instance_id, gpu_name=self.props.gpu_name,
                                num_gpus=self.props.num_gpus, segments=tuple(segments))


def _details(old: InstanceRecord, new: InstanceRecord) -> tuple[str, ...]:
    out = []
    for name in WATCHED_FIELDS:
        before, after = getattr(old, name), getattr(new, name)
        if before == after or (name == "status" and (old.state, new.state) == (before, after)):
            continue  # a status that follows the state says nothing new
        if name in ("outbid", "bid") and before is None and not after:
            continue  # state written before bids existed: on demand, never outbid
        out.append(f"{name} {before} -> {after}")
    return tuple(out)


class _StackFolder:
    def __init__(self, project: str, stack: str, vast_clock: VastClock,
                 actions: Iterable[InstanceAction] = ()) -> None:
        self.project, self.stack = project, stack
        self.open: dict[str, _Open] = {}
        self.closed: list[InstanceTimeline] = []
        self.events: list[AuditEvent] = []
        self.clock = _Clock(model=vast_clock)
        self.team: str | None = None
        self.platform = False
        self.actions = sorted(actions, key=lambda a: a.at)

    def _apply_actions(self, until: float | None) -> None:
        """The guard's stops and starts up to `until` (Vast's clock; None: all), on the instances open then."""
        while self.actions and (until is None or self.actions[0].at <= until):
            action = self.actions.pop(0)
            for opened in self.open.values():
                if opened.props.instance_id != action.instance_id or _epoch(action.at) < opened.since:
                    continue
                component: ComponentName = "storage" if action.action == "stop" else "running"
                if component != opened.component:
                    opened.switch(_epoch(action.at), "vast", component, rate_of(opened.props, component))

    def _created(self, res: InstanceResource, record: UpdateRecord, snapshot: Snapshot) -> _Open:
        props = res.outputs
        vast_created = props.vast_created_at if props.vast_created_at is not None else props.start_date
        basis: TimeBasis
        if vast_created is not None:
            created, basis = _epoch(vast_created), "vast"
        else:
            created, basis = self.clock.to_vast(res.created or record.start_time), "update"
        component = component_of(props)
        team = props.team or snapshot.team or self.team or self.stack
        opened = _Open(name=res.name, instance_id=props.instance_id, team=team, resource=res, props=props,
                       component=component, hourly=rate_of(props, component), since=created, since_basis=basis)
        if props.vast_state_since is not None and _epoch(props.vast_state_since) > created:
            # Provisioning (image pull) is billed as storage until the recorded state took effect.
            opened.component, opened.hourly = "storage", rate_of(props, "storage")
            opened.switch(_epoch(props.vast_state_since), "vast", component, rate_of(props, component))
        return opened

    def _changed(self, opened: _Open, res: InstanceResource, snapshot: Snapshot, record: UpdateRecord) -> None:
        old, new = opened.props, res.outputs
        component = component_of(new)
        rate = rate_of(new, component)
        if component != opened.component or rate != opened.hourly:
            at: datetime
            basis: TimeBasis
            # A new `vast_state_since` is the provider's own record of a state change it made (a refresh
            # keeps the old one): exact, even when a guard's stop in between makes the states look unchanged.
            if new.vast_state_since is not None and new.vast_state_since != old.vast_state_since:
                at, basis = _epoch(new.vast_state_since), "vast"
            else:
                wall = res.modified or snapshot.written_at or record.end_time or record.start_time
                at, basis = self.clock.to_vast(wall), "update"
            opened.switch(at, basis, component, rate)
        opened.props, opened.resource = new, res
        opened.team = new.team or opened.team

    def add(self, entry: HistoryEntry) -> None:
        record, snapshot = entry.record, entry.snapshot
        changes: list[InstanceChange] = []
        if snapshot is not None:
            if snapshot.team:
                self.team = snapshot.team
            self.platform = self.platform or snapshot.platform
            self.clock.observe(snapshot, record)
            if self.actions:
                self._apply_actions(self.clock.to_vast(record.start_time).timestamp())
            current: dict[str, InstanceResource] = {}
            for res in snapshot.instances:
                current.setdefault(res.key, res)
            for key, res in current.items():
                opened = self.open.get(key)
                if opened is not None and opened.resource is res:
                    continue  # the reader reused it: unchanged since the previous checkpoint
                if opened is None:
                    self.open[key] = self._created(res, record, snapshot)
                    changes.append(InstanceChange(name=res.name, instance_id=res.outputs.instance_id,
                                                  action="created", gpu_name=res.outputs.gpu_name))
                    continue
                details = _details(opened.props, res.outputs)
                self._changed(opened, res, snapshot, record)
                if details:
                    changes.append(InstanceChange(name=res.name, instance_id=res.outputs.instance_id,
                                                  action="changed", gpu_name=res.outputs.gpu_name, details=details))
            gone = [key for key in self.open if key not in current]
            deleted_at = self.clock.to_vast(snapshot.written_at or record.end_time or record.start_time)
            for key in gone:
                opened = self.open.pop(key)
                opened.close(deleted_at, "update")
                self.closed.append(opened.timeline(self.project, self.stack, still_open=False))
                changes.append(InstanceChange(name=opened.name, instance_id=opened.instance_id, action="deleted",
                                              gpu_name=opened.props.gpu_name))
        env = record.environment
        self.events.append(AuditEvent(
            project=self.project, stack=self.stack, team=self.team or "", sequence=entry.sequence,
            kind=record.kind, started=record.start_time, ended=record.end_time, result=record.result,
            message=record.message, actor=actor_of(env), commit=_commit_of(env), commit_ref=env.get("git.headName"),
            repository=_repository_of(env),
            dirty=None if "git.dirty" not in env else env["git.dirty"] == "true",
            changes=tuple(changes), checkpoint_missing=snapshot is None,
            unknown_creates=snapshot.pending_creates if snapshot is not None else 0,
        ))

    def result(self) -> StackFold:
        self._apply_actions(None)
        team = self.team or next((o.team for o in self.open.values()), None) or self.stack
        events = tuple(e if e.team else e.model_copy(update={"team": team}) for e in self.events)
        timelines = [*self.closed, *(o.timeline(self.project, self.stack, still_open=True) for o in self.open.values())]
        return StackFold(project=self.project, stack=self.stack, team=team, events=events, timelines=tuple(timelines),
                         platform=self.platform)


def fold_stack(project: str, stack: str, entries: Iterable[HistoryEntry], *,
               vast_clock: VastClock = "running", actions: Iterable[InstanceAction] = ()) -> StackFold:
    """Fold a stack's history, oldest entry first, with the guard's `actions` (of any stack: those of other
    instances are ignored). Consumes `entries` lazily: memory stays proportional to the instances alive at a
    time plus the audit events, not to the size of the history files."""
    folder = _StackFolder(project, stack, vast_clock, actions)
    for entry in entries:
        folder.add(entry)
    return folder.result()
