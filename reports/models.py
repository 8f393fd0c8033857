"""The reports' domain model: audit events, instance timelines, costs, invoices and reconciliation.

Computed once by pure functions (reports/fold.py, reports/costing.py, reports/reconcile.py), then rendered by
each output format (reports/render/). Shaped like Infracost's: report -> team -> instance -> cost component,
money as Decimal and never float, and an unknown price (None) kept distinct from a zero one, so a total that
rests on an unknown says so instead of silently under-counting.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

SCHEMA_VERSION = 1
"""Version of every JSON document the reports emit; bump it on any incompatible change of these models."""

ComponentName = Literal["running", "interruptible", "storage"]
"""What an hour was billed as: `running` an on-demand instance running (GPU and disk at its price),
`interruptible` an interruptible one running (at its bid, disk on top), `storage` stopped or outbid (disk only)."""
TimeBasis = Literal["vast", "update"]
"""Where an event time came from: `vast` = Vast's clock as recorded by the provider (what Vast bills by),
`update` = Pulumi's wall-clock update/resource timestamps, mapped onto Vast's clock when an offset is known."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- audit --------------------------------------------------------------------------------------------------


class Actor(_Model):
    """Who ran an operation, from the environment Pulumi records (`git.*`, `ci.*`, `exec.*`)."""

    author: str | None = None
    author_email: str | None = None
    committer: str | None = None
    committer_email: str | None = None
    ci_system: str | None = None
    ci_build: str | None = None
    ci_build_url: str | None = None
    ci_build_type: str | None = None
    ci_pr: str | None = None
    exec_kind: str | None = None
    exec_agent: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def who(self) -> str:
        person = self.author or self.committer or "unknown"
        if self.committer and self.author and self.committer != self.author:
            person = f"{self.author} (committed by {self.committer})"
        if self.ci_system:
            build = f" #{self.ci_build}" if self.ci_build else ""
            return f"{person} via {self.ci_system}{build}"
        return person


ChangeAction = Literal["created", "changed", "deleted"]


class InstanceChange(_Model):
    name: str
    instance_id: int | None
    action: ChangeAction
    gpu_name: str | None = None
    details: tuple[str, ...] = Field(default=(), description="e.g. 'state running -> stopped'")


AuditSource = Literal["stack", "vast", "vastguard"]


class AuditEvent(_Model):
    """One thing that happened: a stack operation (`source` stack), an action Vast's audit log records for a key
    (`vast`: console and CLI included), or one budget enforcement recorded (`vastguard`: a transfer, a crossing,
    a pause, a resume). `through` says, for the last two, whether it went through a stack, vastguard, or
    neither."""

    project: str
    stack: str
    team: str
    sequence: int
    kind: str
    started: datetime
    ended: datetime | None
    result: str
    message: str
    actor: Actor
    commit: str | None = None
    commit_ref: str | None = None
    repository: str | None = None
    dirty: bool | None = None
    changes: tuple[InstanceChange, ...] = ()
    checkpoint_missing: bool = False
    unknown_creates: int = Field(default=0, description="creates interrupted before Pulumi recorded an id")
    source: AuditSource = "stack"
    through: str | None = Field(default=None, description="e.g. 'stack ml-research', 'outside Pulumi'")

    def of(self, action: ChangeAction) -> tuple[InstanceChange, ...]:
        return tuple(c for c in self.changes if c.action == action)


class AuditReport(_Model):
    schema_version: int = SCHEMA_VERSION
    report: Literal["audit"] = "audit"
    generated_at: datetime
    since: datetime | None = None
    until: datetime | None = None
    events: tuple[AuditEvent, ...]


# --- timelines ----------------------------------------------------------------------------------------------


class Segment(_Model):
    """An interval during which an instance was billed at one rate. `end` None = still rented at the last
    checkpoint (costed up to `now` or the end of the range). `hourly` None = the price is unknown."""

    start: datetime
    end: datetime | None
    component: ComponentName
    hourly: Decimal | None
    start_basis: TimeBasis
    end_basis: TimeBasis | None = None


class InstanceTimeline(_Model):
    project: str
    stack: str
    team: str
    name: str
    instance_id: int | None
    gpu_name: str | None
    num_gpus: int | None
    segments: tuple[Segment, ...]


class StackFold(_Model):
    """Everything folded from one stack's history."""

    project: str
    stack: str
    team: str
    events: tuple[AuditEvent, ...]
    timelines: tuple[InstanceTimeline, ...]
    platform: bool = False
    """The platform stack: its operations are in the audit, but it is no team (no spend, nothing to reconcile)."""


# --- cost ---------------------------------------------------------------------------------------------------


class CostComponent(_Model):
    """Hours at one rate. `cost` None when the rate is unknown."""

    name: ComponentName
    hours: Decimal
    hourly: Decimal | None
    cost: Decimal | None


class InstanceCost(_Model):
    stack: str
    name: str
    instance_id: int | None
    gpu_name: str | None
    num_gpus: int | None
    components: tuple[CostComponent, ...]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost(self) -> Decimal | None:
        """None if any component's price is unknown: a partial sum would read as a full one."""
        total = Decimal(0)
        for c in self.components:
            if c.cost is None:
                return None
            total += c.cost
        return total

    @computed_field  # type: ignore[prop-decorator]
    @property
    def running_hours(self) -> Decimal:
        """On-demand running hours."""
        return sum((c.hours for c in self.components if c.name == "running"), Decimal(0))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def interruptible_hours(self) -> Decimal:
        """Interruptible running hours (billed at the bid)."""
        return sum((c.hours for c in self.components if c.name == "interruptible"), Decimal(0))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def storage_hours(self) -> Decimal:
        return sum((c.hours for c in self.components if c.name == "storage"), Decimal(0))


class PeriodCost(_Model):
    period: str = Field(description="YYYY-MM-DD for days, YYYY-MM for months")
    instances: tuple[InstanceCost, ...]
    known: Decimal = Field(description="sum of the costs whose price is known")
    unknown_components: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def running_hours(self) -> Decimal:
        return sum((i.running_hours for i in self.instances), Decimal(0))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def interruptible_hours(self) -> Decimal:
        return sum((i.interruptible_hours for i in self.instances), Decimal(0))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def storage_hours(self) -> Decimal:
        return sum((i.storage_hours for i in self.instances), Decimal(0))


class TeamSpend(_Model):
    team: str
    periods: tuple[PeriodCost, ...]
    known: Decimal
    unknown_components: int = 0


Granularity = Literal["day", "month"]


class SpendReport(_Model):
    schema_version: int = SCHEMA_VERSION
    report: Literal["spend"] = "spend"
    generated_at: datetime
    start: datetime
    end: datetime
    granularity: Granularity
    teams: tuple[TeamSpend, ...]
    known: Decimal
    unknown_components: int = 0
    estimated_times: int = Field(default=0, description="segment boundaries dated from Pulumi, not Vast, times")


# --- chargeback ---------------------------------------------------------------------------------------------


class InvoiceLine(_Model):
    stack: str
    instance: str
    instance_id: int | None
    gpu_name: str | None
    num_gpus: int | None
    component: ComponentName
    hours: Decimal
    hourly: Decimal | None
    cost: Decimal | None


class Invoice(_Model):
    team: str
    month: str
    lines: tuple[InvoiceLine, ...]
    total: Decimal = Field(description="sum of the lines whose price is known")
    unknown_lines: int = 0
    daily_budget: Decimal | None = Field(default=None, description="the team's daily budget (its team file), if known")


class DailySpend(_Model):
    team: str
    day: date
    cost: Decimal = Field(description="the day's known cost")
    unknown: int = Field(default=0, description="slices of the day whose price is unknown (not in `cost`)")


class ChargebackReport(_Model):
    schema_version: int = SCHEMA_VERSION
    report: Literal["chargeback"] = "chargeback"
    generated_at: datetime
    month: str
    invoices: tuple[Invoice, ...]
    daily: tuple[DailySpend, ...]


# --- reconciliation -----------------------------------------------------------------------------------------

ReconcileStatus = Literal["match", "over", "under", "shadow", "other-team", "unbilled", "unknown-price"]


class ReconcileRow(_Model):
    """One instance, reconstructed vs billed over the window. `difference` = billed - reconstructed.

    `shadow`: billed under the team's key but no stack ever declared it (rented outside Pulumi).
    `other-team`: billed under this team's key but declared by another team's stack.
    `unbilled`: reconstructed spend Vast has not (yet) charged. `over`/`under`: Vast billed more/less."""

    team: str
    instance_id: int | None
    stack: str | None = None
    name: str | None = None
    gpu_name: str | None = None
    label: str | None = None
    on_demand_hours: Decimal = Field(default=Decimal(0), description="reconstructed on-demand running hours")
    interruptible_hours: Decimal = Field(default=Decimal(0), description="reconstructed interruptible running hours")
    billed_gpu_hours: Decimal | None = Field(default=None, description="GPU hours in Vast's charges (None: none)")
    reconstructed: Decimal | None
    billed: Decimal | None
    difference: Decimal | None
    status: ReconcileStatus


class TeamReconciliation(_Model):
    team: str
    reconstructed: Decimal
    billed: Decimal
    shadow: Decimal = Field(description="billed for instances no stack declared")
    on_demand_hours: Decimal = Field(default=Decimal(0), description="reconstructed on-demand running hours")
    interruptible_hours: Decimal = Field(default=Decimal(0), description="reconstructed interruptible running hours")
    billed_gpu_hours: Decimal = Field(default=Decimal(0), description="running hours in Vast's charges (gpu items)")


class ReconcileReport(_Model):
    schema_version: int = SCHEMA_VERSION
    report: Literal["reconcile"] = "reconcile"
    generated_at: datetime
    start_day: date
    end_day: date
    threshold: Decimal
    teams: tuple[TeamReconciliation, ...]
    rows: tuple[ReconcileRow, ...] = Field(description="rows whose difference exceeds the threshold, and shadows")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def clean(self) -> bool:
        return not self.rows
