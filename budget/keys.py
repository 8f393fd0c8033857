"""Where the budget commands find Vast keys: one small seam, so that the platform stack (issue 13) can deliver
them instead of the environment.

Three keys per run, each acting where Vast lets it act (vastclient/README.md, "Access control"):

- a team's key (`VASTGUARD_KEY_<TEAM>`, as `vastguard reconcile` reads it): acts on the team's Vast account;
  the guard lists, stops, starts and relabels its instances and reads its charges with it (instance_read,
  instance_write, billing_read, user_read);
- the team owner's key in the team (`VASTGUARD_OWNER_KEY_<TEAM>`, the bootstrap key made in Vast's console):
  a team can send credit only back to its owner, so reclaiming unused credit needs a key acting in the team
  with billing_write; without one, the team's key is tried;
- the platform owner's personal key (`VASTGUARD_PLATFORM_KEY`): the account that owns the teams and tops them up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from reports.charges import PLATFORM_KEY_ENV, env_name

__all__ = ["PLATFORM_KEY_ENV", "EnvKeys", "KeyLookup", "KeyProblem", "missing_key_hint", "owner_env_name"]


def owner_env_name(team: str) -> str:
    return env_name(team).replace("VASTGUARD_KEY_", "VASTGUARD_OWNER_KEY_", 1)


class KeyProblem(RuntimeError):
    """A key that should be there cannot be had (e.g. an envelope that does not open); the message says why and
    names what to set, never a key or a secret."""


def missing_key_hint(team: str) -> str:
    deploy = env_name(team).replace("VASTGUARD_KEY_", "VASTGUARD_DEPLOY_SECRET_", 1)
    return f"export {env_name(team)} or, for a team taking its keys from the platform stack, {deploy}"


class KeyLookup(Protocol):
    """Each method returns None for a key that is not configured, or raises KeyProblem for one that is but
    cannot be had."""

    def team_key(self, team: str) -> str | None: ...

    def owner_key(self, team: str) -> str | None: ...

    def platform_key(self) -> str | None: ...


class EnvKeys:
    """Keys from the environment (CI secrets): never printed, never in argv."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ

    def team_key(self, team: str) -> str | None:
        return self._env.get(env_name(team)) or None

    def owner_key(self, team: str) -> str | None:
        return self._env.get(owner_env_name(team)) or self.team_key(team)

    def platform_key(self) -> str | None:
        return self._env.get(PLATFORM_KEY_ENV) or None

    def __repr__(self) -> str:
        return "EnvKeys(***)"
