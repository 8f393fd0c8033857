"""Row 6: one guard pass over many teams, against the emulator with Vast's rate limits and 150 ms on every call.

Each team is a Vast team account of one platform owner with its own key (so its own rate limits), a team file and
N running instances with a few hours of charges. The pass reads each team's spend (one listing, one charges
query) and judges it; nothing crosses a threshold, so what is measured is the reading. The value is the API
calls per team over the target (one listing + one charges read); beside it the pass's time against the bound
its calls impose: every team's two calls in sequence, the teams spread over the guard's workers, each call at
least one round trip (the rate limits allow one listing and one charges read per key at once: no wait).

    .venv/bin/python -m bench --rows 6
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from budget.alerts import Alerter
from budget.cli import connector
from budget.guard import Guard
from budget.keys import EnvKeys, owner_env_name
from budget.policy import load_policies
from budget.store import BudgetLog
from emulator import EmulatorServer
from emulator.bodies import ClockBody, ConfigBody, CreateInstanceBody, TeamBody, TeamKeyBody
from emulator.testing import new_api_key
from fleet.budget_log import Actor
from policies.teamfile import TEMPLATE, parse_team_file
from reports.charges import env_name
from reports.sources import LocalBucket

LATENCY = 0.150
WORKERS = 16


def _team_file(directory: Path, team: str) -> None:
    data = json.loads(TEMPLATE.read_text().replace("new-team", team))
    for block in ("vast-daily-budget", "vast-daily-budget-warning"):
        data[block]["daily_budget"] = 1_000_000  # nothing crosses: the pass reads and judges, and that is all
    data["vast-budget-enforcement"].update(action="pause")
    (directory / f"{team}.json").write_text(parse_team_file(data, expect_team=team).dumps())


@dataclass(frozen=True)
class GuardBench:
    teams: int
    instances: int
    elapsed_s: float
    bound_s: float
    calls_per_team: int
    calls: dict[str, int]
    rejected: int
    workers: int


def guard_pass(tmp: Path, *, teams: int, instances: int) -> GuardBench:
    directory = tmp / "teams"
    directory.mkdir(parents=True, exist_ok=True)
    env: dict[str, str] = {}
    accounts: dict[int, str] = {}
    with EmulatorServer(port=0, seed=3, offers=max(600, teams * instances * 2), provision_delay=0,
                        freeze_clock=True) as srv:
        market = srv.market
        market.update_clock(ClockBody(set="2026-11-10T00:00:00Z"))
        platform = srv.create_account(api_key=new_api_key(), balance=10_000_000, username="platform")
        offers = iter(sorted(market.state.offers.values(), key=lambda o: o.id))
        for t in range(teams):
            name = f"team-{t:02d}"
            team = market.seed_team(TeamBody(owner_id=platform.id, team_name=name, transfer_credit=Decimal(10_000)))
            key = new_api_key()
            market.seed_team_key(team.id, TeamKeyBody(api_key=key))
            env[env_name(name)] = env[owner_env_name(name)] = key
            accounts[team.id] = name
            for i in range(instances):
                offer = next(o for o in offers if o.rentable and o.disk_space >= 16)
                market.create_instance(market.account(team.id).account, offer.id, CreateInstanceBody(
                    image="pytorch/pytorch", disk=16, label=f"box-{i} [vg:{name}/box-{i}#0123abcd]"))
            _team_file(directory, name)
        market.update_clock(ClockBody(advance=6 * 3600))  # six hours of charges: one row per instance today
        market.configure(ConfigBody(rate_limits=True, latency_ms=int(LATENCY * 1000)))
        market.requests.clear()
        policies = load_policies(directory, today=datetime.fromtimestamp(market.clock.now(), UTC).date())
        guard = Guard(log=BudgetLog(LocalBucket(tmp / "state")), keys=EnvKeys(env), connect=connector(srv.url),
                      alerter=Alerter(), actor=Actor(who="bench", command="vastguard guard"), workers=WORKERS)
        started = time.monotonic()
        outcomes = guard.run(policies)
        elapsed = time.monotonic() - started
        errors = [e for o in outcomes for e in o.errors]
        if errors:
            raise RuntimeError(f"the guard pass failed: {errors[:3]}")
        records = [r for r in market.requests.records() if r.operation != "control"]
        rejected = sum(1 for r in records if r.status == 429)
    per_team: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for r in records:
        if r.account_id in accounts:
            per_team[accounts[r.account_id]] += 1
            calls[r.operation] += 1
    bound = math.ceil(teams / WORKERS) * 2 * LATENCY
    return GuardBench(teams=teams, instances=instances, elapsed_s=elapsed, bound_s=bound,
                      calls_per_team=max(per_team.values()) if per_team else 0, calls=dict(calls), rejected=rejected,
                      workers=WORKERS)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="vg-bench-guard-") as tmp:
        print(json.dumps(asdict(guard_pass(Path(tmp), teams=50, instances=20)), indent=2))


if __name__ == "__main__":
    main()
