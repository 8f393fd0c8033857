"""The budget log: budget enforcement's records in the state backend's bucket, next to the stacks' state
(layout and records: `fleet.budget_log`). Objects are only ever created, never overwritten, so concurrent
commands coordinate through it: whoever creates a key first owns it.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from fleet.budget_log import (
    ACTIONS,
    GUARD,
    LEDGER,
    Actor,
    InstanceAction,
    Transfer,
    TransferIntent,
    TransferOutcome,
    action_key,
    guard_key,
    ledger_key,
    read_transfers,
)
from reports.sources import Bucket, SourceError

R = TypeVar("R", bound=BaseModel)


class BudgetLogError(RuntimeError):
    """A record cannot be read or written; the message says which and what to do."""


def actor(command: str, environ: Mapping[str, str] | None = None) -> Actor:
    """Who runs this: the CI job (GitHub Actions' actor and run) or the person at this machine."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") == "true":
        run = env.get("GITHUB_RUN_ID", "?")
        return Actor(who=f"{env.get('GITHUB_ACTOR', 'github')} via GitHub Actions run {run}", command=command)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(who=f"{user}@{socket.gethostname()}", command=command)


class BudgetLog:
    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    def create(self, key: str, record: BaseModel) -> bool:
        try:
            return self.bucket.create(key, record.model_dump_json().encode())
        except SourceError as err:
            raise BudgetLogError(f"{err}; nothing was done for it: run the command again once the backend is "
                                 "reachable") from None

    def read(self, key: str, model: type[R]) -> R:
        try:
            return model.model_validate(json.loads(self.bucket.read(key)))
        except (SourceError, ValueError, ValidationError) as err:
            raise BudgetLogError(f"budget record {key} cannot be read ({str(err).splitlines()[0]}); it is written "
                                 "once and never changed: restore it from the backend's versions or backups") from None

    def keys(self, prefix: str) -> list[str]:
        try:
            return sorted(self.bucket.list(prefix))
        except SourceError as err:
            raise BudgetLogError(str(err)) from None

    def exists(self, key: str) -> bool:
        return key in set(self.keys(key.rsplit("/", 1)[0] + "/"))

    # --- the ledger ------------------------------------------------------------------------------------------

    def transfers(self, team: str) -> list[Transfer]:
        """The team's transfers in order, each with its outcome if one was recorded."""
        try:
            return read_transfers(self.keys(f"{LEDGER}/{team}/"), self.bucket.read)
        except (SourceError, ValueError) as err:
            raise BudgetLogError(f"the ledger of team {team} cannot be read ({str(err).splitlines()[0]}); its "
                                 "records are written once and never changed: restore it from the backend's "
                                 "versions or backups") from None

    def claim_intent(self, intent: TransferIntent) -> bool:
        """Take the ledger's next slot for this transfer; False: someone else took it first."""
        return self.create(ledger_key(intent.team, intent.seq), intent)

    def record_outcome(self, team: str, outcome: TransferOutcome) -> bool:
        return self.create(ledger_key(team, outcome.seq, outcome=True), outcome)

    # --- the guard's claims and actions --------------------------------------------------------------------

    def claim(self, team: str, window: str, name: str, record: BaseModel) -> bool:
        return self.create(guard_key(team, window, name), record)

    def has(self, team: str, window: str, name: str) -> bool:
        return self.exists(guard_key(team, window, name))

    def guard_keys(self, team: str) -> list[str]:
        return self.keys(f"{GUARD}/{team}/")

    def record_action(self, action: InstanceAction) -> None:
        self.create(action_key(action.team, action), action)

    def actions(self, team: str | None = None) -> list[InstanceAction]:
        prefix = f"{ACTIONS}/{team}/" if team else f"{ACTIONS}/"
        return [self.read(k, InstanceAction) for k in self.keys(prefix) if k.endswith(".json")]
