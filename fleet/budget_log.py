"""What budget enforcement records next to the stacks' state, and where: the one contract between the writers
(`vastguard budget allocate`, `vastguard guard`, `vastguard resume`: budget/) and the readers (the same commands,
`vastguard audit`, and the reports, which cost an instance stopped and started by the guard behind Pulumi's back
from these records).

Every record is a JSON object written once, under a key nobody else writes (objects are only ever created,
never overwritten: on a local directory, S3 and Azure Blob alike "create if absent" is atomic), so two commands
running at once never lose or double anything:

- `.vastguard/ledger/<team>/<seq>.json` a credit transfer about to be made (`TransferIntent`), and
  `<seq>.outcome.json` what became of it (`TransferOutcome`). The sequence number is the lock: two allocations
  at once both want the next one, and only one can create it;
- `.vastguard/guard/<team>/<window>/<name>.json` the guard's claims in one budget window: a crossing alerted
  (`Crossing`), the pause (`Pause`), a resume (`Resume`);
- `.vastguard/actions/<team>/<time>-<instance>-<action>.json` each start or stop the guard made
  (`InstanceAction`), at Vast's time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ROOT = ".vastguard"
LEDGER = f"{ROOT}/ledger"
GUARD = f"{ROOT}/guard"
ACTIONS = f"{ROOT}/actions"
SEQ_DIGITS = 8


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Actor(_Record):
    """Who ran the command: a person (`user@host`) or a CI job (system, run, actor)."""

    who: str
    command: str


TransferKind = Literal["top-up", "reclaim"]


class TransferIntent(_Record):
    seq: int
    team: str
    team_account: int = Field(description="the Vast team account's id")
    recipient: str = Field(description="the account the credit goes to (the team's, or its owner's for a reclaim)")
    period: str = Field(description="the budget window the credit is for (a window key)")
    kind: TransferKind
    amount: Decimal
    balance_before: Decimal
    budget: Decimal
    spent: Decimal
    reserve: Decimal = Field(description="storage the team's disks bill to the period's end")
    closes: bool = Field(default=False, description="a reclaim of what a finished period left unused (its `spent` "
                                                    "is the period's whole spend)")
    at: float = Field(description="Vast's clock when the plan was made")
    by: Actor


class TransferOutcome(_Record):
    seq: int
    status: Literal["sent", "not-sent"]
    balance_after: Decimal | None = None
    at: float | None = None
    note: str | None = None


class Transfer(_Record):
    """An intent with its outcome (None: not known yet, or the command that made it died)."""

    intent: TransferIntent
    outcome: TransferOutcome | None = None

    @property
    def sent(self) -> bool:
        return self.outcome is not None and self.outcome.status == "sent"


class Crossing(_Record):
    team: str
    window: str
    threshold: Decimal = Field(description="the share of the budget reached (1 = all of it)")
    budget: Decimal
    spent: Decimal
    committed: Decimal
    at: float
    by: Actor


class Pause(_Record):
    team: str
    window: str
    reason: str
    budget: Decimal
    committed: Decimal
    at: float
    by: Actor


class Resume(_Record):
    team: str
    window: str
    reason: str
    at: float
    by: Actor


ActionKind = Literal["stop", "start"]
ActionReason = Literal["pause", "lift", "resume", "idle"]


class InstanceAction(_Record):
    """A start or stop the guard made: when (Vast's clock, from the response that confirmed it), to which
    instance, and why."""

    team: str
    instance_id: int
    action: ActionKind
    reason: ActionReason
    at: float
    window: str | None = None
    stack: str | None = Field(default=None, description="the stack its ownership tag names, if any")
    by: Actor


def safe(part: str) -> str:
    """A window key (`day:2026-11-05@Europe/Berlin`) as one path segment."""
    return part.replace("/", "~").replace(":", "_")


def ledger_key(team: str, seq: int, *, outcome: bool = False) -> str:
    return f"{LEDGER}/{team}/{seq:0{SEQ_DIGITS}d}{'.outcome' if outcome else ''}.json"


def guard_key(team: str, window: str, name: str) -> str:
    return f"{GUARD}/{team}/{safe(window)}/{name}.json"


def action_key(team: str, action: InstanceAction) -> str:
    return f"{ACTIONS}/{team}/{int(action.at * 1_000_000):020d}-{action.instance_id}-{action.action}.json"


def read_transfers(keys: Iterable[str], read: Callable[[str], bytes]) -> list[Transfer]:
    """The transfers among `keys` (ledger objects of one team or all), each with its outcome, by team and
    sequence; `read` fetches an object's bytes (the caller's I/O)."""
    keys = list(keys)
    outcomes = {k for k in keys if k.endswith(".outcome.json")}
    out = []
    for key in keys:
        if not key.startswith(f"{LEDGER}/") or not key.endswith(".json") or key in outcomes:
            continue
        intent = TransferIntent.model_validate_json(read(key))
        outcome_key = ledger_key(intent.team, intent.seq, outcome=True)
        outcome = TransferOutcome.model_validate_json(read(outcome_key)) if outcome_key in outcomes else None
        out.append(Transfer(intent=intent, outcome=outcome))
    return sorted(out, key=lambda t: (t.intent.team, t.intent.seq))


GuardRecord = Crossing | Pause | Resume


def read_guard_records(keys: Iterable[str], read: Callable[[str], bytes]) -> list[tuple[str, GuardRecord]]:
    """(claim name, record) of the guard's crossings, pauses and resumes among `keys` (retries and delivery
    receipts left out)."""
    out: list[tuple[str, GuardRecord]] = []
    for key in keys:
        name = key.rsplit("/", 1)[-1].removesuffix(".json")
        if not key.startswith(f"{GUARD}/") or name.endswith(".sent") or ".retry-" in name:
            continue
        model: type[GuardRecord] = Pause if name == "pause" else Resume if name == "resume" else Crossing
        out.append((name, model.model_validate_json(read(key))))
    return out
