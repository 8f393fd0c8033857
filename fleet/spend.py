"""The properties of one `vastai:TeamSpend` resource: what a team has actually spent in its budget windows, read
at preview. The one contract between its provider (providers/team_spend.py), the policy pack's budget rules and
the reports (which ignore it: it bills nothing).

Why a resource: the pack must judge budgets on actual spend at `pulumi preview`, and a rule can only read what
the engine gives it, resource properties. Like the instance's price `quote`, the provider's `check` adds the
`reading` to the inputs: one listing of the team's instances and one charges query (a page per 100 charge rows)
per team per preview. Its `diff` reports a change whenever the reading moved, so that the engine hands the pack's
stack rules the fresh reading (an unchanged resource would show the outputs of the last deploy), and each deploy
records in the stack's history the spend it was judged on.

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
    return SpendReading(status="known", read_at=at.timestamp(), timezone=timezone,
                        windows=tuple(WindowReading.of(s) for s in spends), instances=tuple(instances),
                        charge_pages=charge_pages)
