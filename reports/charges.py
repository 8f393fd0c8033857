"""What Vast.ai charged each team's key: the reports' second input, fetched through the vastai client.

Each team rents with its own key (billing isolation), so charges are fetched once per team key. A key is
looked up, in order, in `VASTGUARD_KEY_<TEAM>` (team upper-cased, dashes as underscores, e.g.
VASTGUARD_KEY_ML_RESEARCH) and then, if allowed, in the team's stack config through the Pulumi CLI
(`pulumi config get vastai:apiKey`), the only way to decrypt a Pulumi secret. Keys are never printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import Protocol

from fleet.stack_config import API_KEY_CONFIG
from vastclient.errors import VastError
from vastclient.models import AuditEntry, Charge


class ChargesError(RuntimeError):
    """Charges could not be fetched; the message names the team and what to do, never the key."""


PLATFORM_KEY_ENV = "VASTGUARD_PLATFORM_KEY"
"""The platform owner's personal key: the account that owns the teams (budget/keys.py)."""


class ChargesClient(Protocol):
    def charges(self, start_day: date, end_day: date) -> Sequence[Charge]: ...

    def audit_logs(self) -> Sequence[AuditEntry]: ...


ClientFactory = Callable[[str, str | None], AbstractContextManager[ChargesClient]]
"""(api_key, base_url) -> a client used as a context manager."""
AuditClientFactory = ClientFactory


def env_name(team: str) -> str:
    return "VASTGUARD_KEY_" + re.sub(r"[^A-Z0-9]", "_", team.upper())


def vast_client_factory(api_key: str, base_url: str | None) -> AbstractContextManager[ChargesClient]:
    from vastclient import VastClient

    return VastClient(api_key=api_key, base_url=base_url)


class KeyResolver:
    def __init__(self, *, environ: Mapping[str, str] | None = None,
                 from_stack: Callable[[str], str | None] | None = None) -> None:
        self._env = os.environ if environ is None else environ
        self._from_stack = from_stack

    def __call__(self, team: str, stacks: Sequence[str]) -> str:
        key = self._env.get(env_name(team))
        if key:
            return key
        if self._from_stack is not None:
            for stack in stacks:
                key = self._from_stack(stack)
                if key:
                    return key
        where = f" or `{API_KEY_CONFIG}` in stack {', '.join(stacks)} (with --keys-from-pulumi)" if stacks else ""
        raise ChargesError(f"no Vast.ai key for team {team!r}: export {env_name(team)}{where}")


def fetch_charges(teams: Mapping[str, Sequence[str]], *, start_day: date, end_day: date, key_for: KeyResolver,
                  base_url: str | None, factory: ClientFactory = vast_client_factory) -> dict[str, list[Charge]]:
    """`teams` maps each team to its stacks (where its key may live)."""
    out: dict[str, list[Charge]] = {}
    for team, stacks in sorted(teams.items()):
        key = key_for(team, stacks)
        try:
            with factory(key, base_url) as client:
                out[team] = list(client.charges(start_day, end_day))
        except VastError as err:  # the client redacts the key from every message it builds
            raise ChargesError(f"fetching charges of team {team!r} failed: {err}") from None
    return out
