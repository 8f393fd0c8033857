"""The properties of one `vastai:TeamSpend` resource: what a team has actually spent in its budget windows, read
at preview. The one contract between its provider (providers/team_spend.py), the policy pack's budget rules and
the reports (which ignore it: it bills nothing).

Why a resource: the pack must judge budgets on actual spend at `pulumi preview`, and a rule can only read what
the engine gives it, resource properties. Like the instance's price `quote`, the provider's `check` adds the
`reading` to the inputs: one listing of the team's instances and one charges query (a page per 100 charge rows)
per team per preview. Its `diff` reports a change when the reading moved (`moved`), so that the engine hands the
pack's stack rules the new reading (an unchanged resource would show the outputs of the last deploy); each
deploy records in the stack's history the spend as it was once the deploy's changes were made.

- `TeamSpendInputs`: what the program declares (team, stack, the time zone and windows its team file names) and,
  after `check`, the `reading`;
- `TeamSpendOutputs`: the same, as deployed;
- `SpendReading`: known (each window's charged, accrued and committed spend, the live instances and their
  guard marks) or unknown (`reason` says what to fix), never zero for unknown.

Money is Decimal, carried in properties as decimal strings (exact), times as epoch seconds on Vast's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fleet.budget import (
    WINDOW_KINDS,
    ChargeRow,
    LiveRate,
    UnknownSpendError,
    Window,
    WindowKind,
    WindowSpend,
    window,
    window_spend,
)
from fleet.labels import PAUSED, marks

TEAM_SPEND_TYPE = "pulumi-python:dynamic/vastai:TeamSpend"
TEAM_SPEND_NAME = "team-spend"


class LiveInstance(BaseModel):
    """One of the team's instances on Vast when the reading was taken (stack-owned or not)."""

    model_config = ConfigDict(frozen=True)

    instance_id: int
    status: str | None = Field(description="Vast's actual_status")
    num_gpus: int | None = None
    dph_total: Decimal | None = None
    stack: str | None = Field(default=None, description="the stack its ownership tag names; None: outside Pulumi")
    paused: str | None = Field(default=None, description="the budget window the guard paused it for")

    @property
    def running(self) -> bool:
        return self.status == "running"


class WindowReading(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: WindowKind
    key: str
    start: float
    end: float
    charged: Decimal
    accrued: Decimal
    storage_to_end: Decimal
    exact: bool = Field(description="False: a charge the window cuts was counted at most (a non-UTC window)")

    @property
    def spent(self) -> Decimal:
        return self.charged + self.accrued

    @classmethod
    def of(cls, spend: WindowSpend) -> WindowReading:
        w = spend.window
        return cls(kind=w.kind, key=w.key, start=w.start.timestamp(), end=w.end.timestamp(), charged=spend.charged,
                   accrued=spend.accrued, storage_to_end=spend.storage_to_end, exact=spend.exact)


class SpendReading(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["known", "unknown"]
    reason: str | None = Field(default=None, description="why it is unknown, and what to fix")
    read_at: float | None = Field(default=None, description="Vast's clock when the charges were read")
    timezone: str = "UTC"
    windows: tuple[WindowReading, ...] = ()
    instances: tuple[LiveInstance, ...] = ()
    burn: Decimal = Field(default=Decimal(0), description="$/h the team's live instances bill now (all of them)")
    charge_pages: int = Field(default=0, description="charges requests it took (a page per 100 rows)")

    @classmethod
    def unknown(cls, reason: str, *, timezone: str = "UTC", read_at: float | None = None) -> SpendReading:
        return cls(status="unknown", reason=reason, timezone=timezone, read_at=read_at)

    def of_kind(self, kind: WindowKind) -> WindowReading | None:
        return next((w for w in self.windows if w.kind == kind), None)

    def window(self, kind: WindowKind) -> Window | None:
        """The budget window of `kind` containing the reading's moment, in its time zone."""
        if self.read_at is None:
            return None
        return window(kind, datetime.fromtimestamp(self.read_at, UTC), self.timezone)

    def paused_for(self) -> list[str]:
        """The current windows the guard has paused the team for (marks on its live instances)."""
        current = {w.key for w in self.windows}
        return sorted({i.paused for i in self.instances if i.paused in current})

    def outside(self, stack: str) -> list[LiveInstance]:
        """Running instances no resource of `stack` owns (rented outside Pulumi, or by another stack)."""
        return [i for i in self.instances if i.running and i.stack != stack]


def live_instance(*, instance_id: int, status: str | None, num_gpus: int | None, dph_total: float | None,
                  label: str | None, stack: str | None) -> LiveInstance:
    return LiveInstance(instance_id=instance_id, status=status, num_gpus=num_gpus,
                        dph_total=None if dph_total is None else Decimal(str(dph_total)), stack=stack,
                        paused=marks(label).get(PAUSED))


class TeamSpendInputs(BaseModel):
    """What the program declares, and (after `check`) the reading."""

    model_config = ConfigDict(extra="forbid")

    team: str = Field(min_length=1)
    stack: str = Field(min_length=1, description="the stack (in the provider process `pulumi.get_stack()` is a "
                                                 "placeholder, so the program passes it)")
    timezone: str = Field(default="UTC", description="the team's budget time zone (its team file)")
    windows: tuple[WindowKind, ...] = Field(default=WINDOW_KINDS, min_length=1,
                                            description="the windows to read: day, month (the team file's budgets)")
    fleet: str = Field(default="", description="a digest of the fleet the program declares: a deploy that changes "
                                               "it records the spend as it is after the change")
    reading: SpendReading | None = None


class TeamSpendOutputs(TeamSpendInputs):
    """As deployed: the inputs (the reading the deploy was judged on)."""


class TeamSpendRecord(BaseModel):
    """A TeamSpend's outputs as a state file records them: every field optional."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    team: str | None = None
    stack: str | None = None
    timezone: str | None = None
    reading: SpendReading | None = None


def read_spend(*, timezone: str, kinds: tuple[WindowKind, ...], at: datetime, rows: Sequence[ChargeRow],
               rates: Sequence[LiveRate], instances: Sequence[LiveInstance], charge_pages: int) -> SpendReading:
    """The reading of one team at `at` (Vast's clock) from its charges and its live instances."""
    try:
        spends = [window_spend(window(kind, at, timezone), at, rows, rates) for kind in kinds]
    except UnknownSpendError as err:
        return SpendReading.unknown(str(err), timezone=timezone, read_at=at.timestamp())
    burn = sum((r.hourly for r in rates if r.hourly is not None), Decimal(0))
    return SpendReading(status="known", read_at=at.timestamp(), timezone=timezone,
                        windows=tuple(WindowReading.of(s) for s in spends), instances=tuple(instances), burn=burn,
                        charge_pages=charge_pages)


STALE_AFTER = 900.0
"""Seconds (Vast's clock) after which a preview takes the new reading whatever it says."""
MATERIAL = Decimal("0.01")


def moved(old: SpendReading | None, new: SpendReading | None) -> bool:
    """Whether `new` says something `old` did not: the resource's diff reports a change (and the pack judges `new`)
    only then, so that an unchanged stack previews without changes. `old` still stands while it is recent (15
    minutes), for the same windows, with the same instances, pauses and burn, and its spend extrapolated at its
    burn is within a cent of the new one: judged from `old`'s moment to the window's end, the budget rules then
    reach the same total (or, for a stack that plans to cost more than it burns, a higher one)."""
    if old is None or new is None:
        return old is not new
    if new.status != "known" or old.status != "known":
        return True  # an unknown reading is always judged (and denied): never an old known one in its place
    if old.read_at is None or new.read_at is None or new.read_at - old.read_at > STALE_AFTER:
        return True
    if old.timezone != new.timezone or [w.key for w in old.windows] != [w.key for w in new.windows]:
        return True
    if abs(old.burn - new.burn) >= MATERIAL / 100 or _states(old) != _states(new):
        return True
    hours = Decimal(str(new.read_at - old.read_at)) / Decimal(3600)
    return any(abs(n.spent - (o.spent + old.burn * hours)) >= MATERIAL for o, n in zip(old.windows, new.windows,
                                                                                     strict=True))


def _states(reading: SpendReading) -> set[tuple[int, str | None, str | None]]:
    return {(i.instance_id, i.status, i.paused) for i in reading.instances}
