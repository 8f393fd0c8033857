"""A small world for the budget commands, in-process against the emulator: a platform owner with teams of their own
(Vast team accounts, each with the console's key), team files in a directory, the budget log in a local bucket,
and a webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from budget.alerts import Alerter
from budget.allocate import Allocator
from budget.cli import connector
from budget.guard import Guard
from budget.keys import EnvKeys, owner_env_name
from budget.policy import TeamPolicy, load_policies
from budget.store import BudgetLog
from emulator import EmulatorServer
from emulator.bodies import ClockBody
from emulator.testing import Control, EmulatorAccount, EmulatorTeam, make_account, make_team, make_team_key
from fleet.budget_log import Actor
from policies.teamfile import TEMPLATE, parse_team_file
from reports.charges import env_name
from reports.sources import LocalBucket
from vastclient import OfferQuery, VastClient

IMAGE = "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime"


def write_team_file(directory: Path, team: str, *, daily: float = 10, monthly: float | None = None,
                    action: str = "alert", warn: float = 0.8, idle: Mapping[str, Any] | None = None,
                    prepaid: Mapping[str, Any] | None = None, timezone: str = "UTC") -> Path:
    """A valid team file from the onboarding template, with these budget settings."""
    data = json.loads(TEMPLATE.read_text().replace("new-team", team))
    data["vast-daily-budget"]["daily_budget"] = daily
    data["vast-daily-budget-warning"]["daily_budget"] = daily
    data["vast-monthly-budget"]["monthly_budget"] = monthly
    data["vast-actual-spend"]["timezone"] = timezone
    data["vast-budget-enforcement"].update(action=action, warn_share=warn, idle=idle, prepaid=prepaid)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{team}.json"
    path.write_text(parse_team_file(data, expect_team=team).dumps())
    return path


class Receiver:
    """A local webhook: records each JSON body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                owner.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(owner.status)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def texts(self) -> list[str]:
        return [str(b["text"]) for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class World:
    srv: EmulatorServer
    root: Path
    start: datetime
    platform: EmulatorAccount
    env: dict[str, str] = field(default_factory=dict, repr=False)  # keys: never in a failure's text
    teams: dict[str, EmulatorTeam] = field(default_factory=dict)

    @property
    def control(self) -> Control:
        return Control(self.srv.url)

    @property
    def team_files(self) -> Path:
        return self.root / "teams"

    @property
    def log(self) -> BudgetLog:
        return BudgetLog(LocalBucket(self.root / "state"))

    def at(self, hours: float) -> datetime:
        moment = self.start + timedelta(hours=hours)
        self.srv.market.update_clock(ClockBody(set=moment.timestamp()))
        return moment

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.srv.market.clock.now(), UTC)

    def add_team(self, name: str, **team_file: Any) -> EmulatorTeam:
        team = make_team(self.srv, self.platform, name=name)
        key = make_team_key(self.srv, team)
        self.env[env_name(name)] = key
        self.env[owner_env_name(name)] = key
        self.teams[name] = team
        write_team_file(self.team_files, name, **team_file)
        return team

    def key(self, team: str) -> str:
        return self.env[env_name(team)]

    def client(self, team: str) -> VastClient:
        return VastClient(api_key=self.key(team), base_url=self.srv.url)

    def rent(self, team: str, *, label: str, gpu: str = "RTX 4090") -> int:
        with self.client(team) as vast:
            offer = vast.search_offers(OfferQuery(gpu_names=gpu, disk_gb=16, order=(("dph_total", "asc"),),
                                                  limit=1))[0]
            return vast.create_instance(offer.id, image=IMAGE, disk_gb=16, label=label)

    def balance(self, team: str) -> Decimal:
        return Decimal(str(self.control.account(self.teams[team].id)["balance"]))

    def policies(self, *teams: str) -> list[TeamPolicy]:
        return load_policies(self.team_files, teams, today=self.now().date())

    def guard(self, alerter: Alerter, who: str = "guard") -> Guard:
        return Guard(log=self.log, keys=EnvKeys(self.env), connect=connector(self.srv.url, pace=False), alerter=alerter,
                     actor=Actor(who=who, command="vastguard guard"))

    def allocator(self, who: str = "allocate") -> Allocator:
        return Allocator(log=self.log, keys=EnvKeys(self.env), connect=connector(self.srv.url, pace=False),
                         actor=Actor(who=who, command="vastguard budget allocate"))


def world(tmp: Path, *, start: datetime) -> Iterator[World]:
    with EmulatorServer(port=0, seed=11, provision_delay=0, freeze_clock=True) as srv:
        srv.market.update_clock(ClockBody(set=start.timestamp()))
        platform = make_account(srv, balance=100_000, username="platform")
        from budget.keys import PLATFORM_KEY_ENV

        w = World(srv=srv, root=tmp, start=start, platform=platform, env={PLATFORM_KEY_ENV: platform.api_key})
        yield w
