"""The seed platform on an emulator, through the real engine: the platform stack creates the three seed teams,
the console's step (a key inside each team) is the emulator's control plane, the second `up` makes roles,
members and keys, and each seed team stack takes its keys from the platform's envelopes. Shared by the platform
engine tests (tests/e2e/test_platform.py, test_platform_s3.py)."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emulator import Account, EmulatorServer
from emulator.bodies import TeamKeyBody
from emulator.testing import EmulatorAccount, make_account
from engine import Engine
from fleet.access_fields import KEY_KINDS, KeyKind, recipient_env
from vastclient import VastClient
from vastguard.keys import deliver, key_source, project_name
from vastguard.workspace import Workspace

TEAMS = ("data-science", "ml-engineering", "ml-research")
PLATFORM = "platform"


@dataclass
class PlatformEnv:
    ws: Workspace
    emulator: EmulatorServer
    owner: EmulatorAccount
    team_ids: dict[str, int] = field(default_factory=dict)
    console_keys: dict[str, str] = field(default_factory=dict, repr=False)

    def up(self, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.ws.up(PLATFORM, check=check)

    def preview(self) -> subprocess.CompletedProcess[str]:
        return self.ws.preview(PLATFORM)

    def text(self, result: subprocess.CompletedProcess[str]) -> str:
        return result.stdout + result.stderr

    def outputs(self) -> dict[str, Any]:
        return self.ws.outputs(PLATFORM)

    def declaration(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(self.ws.stack_file(PLATFORM).read_text())
        return data

    def declare(self, data: dict[str, Any]) -> None:
        self.ws.stack_file(PLATFORM).write_text(yaml.safe_dump(data, sort_keys=False))

    def key(self, team: str, kind: KeyKind) -> str:
        """The key the team's `kind` job opens from the platform stack's envelope."""
        source = key_source(self.ws.root, team)
        assert source is not None
        return deliver(source, kind, backend_url=self.ws.cli.env["PULUMI_BACKEND_URL"],
                       project=project_name(self.ws.root), environ=self.ws.cli.env).key

    def key_id(self, team: str, kind: KeyKind) -> int:
        key_id: int = self.outputs()["teams"][team]["keys"][kind]["key_id"]
        return key_id

    def client(self, key: str) -> VastClient:
        return VastClient(api_key=key, base_url=self.emulator.url)

    def account(self, team: str) -> Account:
        return self.emulator.market.state.accounts[self.team_ids[team]]

    def live(self, team: str) -> list[Any]:
        return self.emulator.market.all_instances(self.account(team))[0]


def build_platform(engine: Engine, root: Path, emulator: EmulatorServer, *,
                   extra_env: dict[str, str] | None = None) -> PlatformEnv:
    recipients = {recipient_env(team, kind): secrets.token_urlsafe(32) for team in TEAMS for kind in KEY_KINDS}
    owner = make_account(emulator, balance=5000, username="platform-owner")
    ws = Workspace.create(engine, root / "ws", state_dir=root / "state",
                          extra_env={"PULUMI_HOME": str(root / "home"), **recipients, **(extra_env or {})})
    env = PlatformEnv(ws, emulator, owner)
    ws.init_platform(personal_key=owner.api_key, vast_url=emulator.url)
    env.up()  # the teams (nothing inside them yet: no key in any team)
    for team in TEAMS:
        env.team_ids[team] = env.outputs()["teams"][team]["team_id"]
        key = "console-" + secrets.token_hex(20)
        emulator.market.seed_team_key(env.team_ids[team], TeamKeyBody(api_key=key, user_id=owner.id, name="console"))
        env.console_keys[team] = key
        ws.set_team_key(team, key)
    env.up()  # roles, members, keys
    with env.client(owner.api_key) as personal:
        for team in TEAMS:
            personal.transfer_credit(env.team_ids[team], 300)
    for team in TEAMS:
        ws.init_team(team, vast_url=emulator.url)
    return env
