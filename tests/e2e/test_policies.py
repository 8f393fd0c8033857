"""The policy pack through the real engine against the emulator (issue 5).

Each team's own stack passes `pulumi preview` with its own team file; for each rule a change that violates it
fails the preview (non-zero exit, the rule's message) and `pulumi up` with the pack rents nothing.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator import Account, EmulatorServer
from engine import Engine
from policies.names import RuleName
from policies.report import pattern
from tests.e2e.conftest import early_in_the_month
from vastguard.workspace import Workspace, team_policy_config

pytestmark = pytest.mark.engine

TEAMS = ("ml-research", "ml-engineering", "data-science")


@dataclass
class Pack:
    ws: Workspace
    emulator: EmulatorServer
    accounts: dict[str, Account]
    seed_stacks: dict[str, str]
    tmp: Path

    def live(self, team: str) -> int:
        return len(self.emulator.market.all_instances(self.accounts[team])[0])

    def edit(self, team: str, change: Callable[[dict[str, Any]], None]) -> None:
        path = self.ws.stack_file(team)
        data = yaml.safe_load(path.read_text())
        change(data["config"])
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def restore(self, team: str) -> None:
        self.ws.stack_file(team).write_text(self.seed_stacks[team])

    def team_file(self, team: str, change: Callable[[dict[str, Any]], None]) -> Path:
        data = json.loads(team_policy_config(team).read_text())
        change(data)
        path = self.tmp / f"{team}-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps(data))
        return path

    def preview(self, team: str, config: Path | None = None, *, pack: bool = True) -> tuple[int, str]:
        args = ["preview"]
        if pack:
            args += ["--policy-pack", str(team_policy_config(team).parent.parent)]
            if config is not None:
                args += ["--policy-pack-config", str(config)]
        result = self.ws.cli.run(*args, stack=team, check=False)
        return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def pack(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pack]:
    tmp = tmp_path_factory.mktemp("policies-e2e")
    with EmulatorServer(port=0, seed=7, provision_delay=0) as srv:
        early_in_the_month(srv)  # "daily-budget" and "monthly-budget" are over only with most of their window left
        ws = Workspace.create(engine, tmp / "ws", state_dir=tmp / "state",
                              extra_env={"PULUMI_HOME": str(tmp / "home")})
        accounts = {}
        for team in TEAMS:
            key = f"{team}-{secrets.token_hex(16)}"
            accounts[team] = srv.create_account(api_key=key, balance=1000, username=team)
            ws.init_team(team, api_key=key, vast_url=srv.url)
        seeds = {team: ws.stack_file(team).read_text() for team in TEAMS}
        yield Pack(ws, srv, accounts, seeds, tmp)


@pytest.mark.parametrize("team", TEAMS)
def test_each_seed_stack_passes_with_its_own_team_file(pack: Pack, team: str) -> None:
    code, text = pack.preview(team, team_policy_config(team))
    assert code == 0, text[-3000:]


def group(name: str, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["vastguard:fleet"][name].update(changes)

    return change


# (team, stack change, team-file change, rule, message key, fields the message must carry)
Case = tuple[str, Callable[[dict[str, Any]], None] | None, Callable[[dict[str, Any]], None] | None,
             RuleName, str, dict[str, str]]


def set_block(rule: RuleName, **values: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data[str(rule)].update(values)

    return change


def set_team(config: dict[str, Any]) -> None:
    config["vastguard:team"] = "ml-research"


CASES: dict[str, Case] = {
    "gpu-not-allowed": ("ml-research", group("finetune", gpu="RTX_4090"), None, RuleName.GPU_ALLOW_LIST,
                        "not-allowed", {"team": "ml-research"}),
    "gpu-family": ("ml-research", group("pretrain", gpu="H100"), None, RuleName.GPU_ALLOW_LIST, "family",
                   {"team": "ml-research"}),
    "max-dph": ("ml-research", group("pretrain", max_dph=4.5), None, RuleName.INSTANCE_MAX_DPH, "max-dph",
                {"team": "ml-research"}),
    "reliability": ("data-science", group("notebook", min_reliability=0.9), None, RuleName.HOST_MIN_RELIABILITY,
                    "below", {"team": "data-science"}),
    "unverified": ("data-science", group("notebook", verified_only=False), None, RuleName.VERIFIED_HOSTS_ONLY,
                   "unverified", {"team": "data-science"}),
    "image": ("data-science", group("notebook", image="ghcr.io/someone/miner:latest"), None,
              RuleName.IMAGE_ALLOWED_REGISTRIES, "not-allowed", {"team": "data-science"}),
    "disk": ("ml-engineering", group("inference", disk_gb=300), None, RuleName.DISK_MAX_SIZE, "too-large",
             {"team": "ml-engineering"}),
    "instances": ("ml-engineering", group("eval", count=3), None, RuleName.MAX_INSTANCES, "too-many",
                  {"team": "ml-engineering"}),
    "gpus": ("ml-engineering", None, set_block(RuleName.MAX_GPUS, max_gpus=2), RuleName.MAX_GPUS, "too-many",
             {"team": "ml-engineering"}),
    "daily-budget": ("ml-research", group("finetune", count=7), None, RuleName.DAILY_BUDGET, "over-actual",
                     {"team": "ml-research"}),
    "monthly-budget": ("ml-engineering", None, set_block(RuleName.MONTHLY_BUDGET, monthly_budget=100),
                       RuleName.MONTHLY_BUDGET, "over", {"team": "ml-engineering"}),
    "hourly-burn": ("ml-engineering", None, set_block(RuleName.MAX_HOURLY_BURN, max_hourly_burn=0.30),
                    RuleName.MAX_HOURLY_BURN, "over", {"team": "ml-engineering"}),
    "team-mismatch": ("data-science", set_team, None, RuleName.TEAM_BINDING, "team-mismatch",
                      {"team": "data-science"}),
    # Interruptible instances: a GPU the team must rent at a bid declared on demand; a bid over the cap; too
    # much of the fleet's GPUs on demand.
    "interruptible-required": ("ml-engineering", None,
                               set_block(RuleName.INTERRUPTIBLE_REQUIRED, gpus=["RTX_4090"]),
                               RuleName.INTERRUPTIBLE_REQUIRED, "gpu", {"team": "ml-engineering", "value": "RTX 4090"}),
    "bid-cap": ("ml-engineering", group("inference", interruptible=True, max_bid=0.5),
                set_block(RuleName.BID_CAP, max_bid=0.3), RuleName.BID_CAP, "over",
                {"team": "ml-engineering", "value": "$0.50"}),
    "on-demand-share": ("ml-engineering", None, set_block(RuleName.ON_DEMAND_GPU_SHARE, max_on_demand_share=0.5),
                        RuleName.ON_DEMAND_GPU_SHARE, "over", {"team": "ml-engineering"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_violation_fails_preview_and_up_rents_nothing(pack: Pack, case: str) -> None:
    team, stack_change, file_change, rule, key, fields = CASES[case]
    config = pack.team_file(team, file_change) if file_change else team_policy_config(team)
    if stack_change:
        pack.edit(team, stack_change)
    try:
        code, text = pack.preview(team, config)
        assert code != 0, text[-3000:]
        assert "mandatory" in text
        assert pattern(rule, key, **fields).search(text), text[-3000:]
        # The denial is the whole story: no traceback of the program the engine stopped after it.
        assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]

        before = pack.live(team)
        up = pack.ws.cli.run("up", "--yes", "--policy-pack", str(team_policy_config(team).parent.parent),
                             "--policy-pack-config", str(config), stack=team, check=False)
        assert up.returncode != 0
        assert pack.live(team) == before == 0
    finally:
        pack.restore(team)


def test_wrong_team_file_denies(pack: Pack) -> None:
    code, text = pack.preview("data-science", team_policy_config("ml-research"))
    assert code != 0
    assert pattern(RuleName.TEAM_BINDING, "stack-not-governed", team="ml-research").search(text), text[-3000:]


def test_no_team_file_fails_closed(pack: Pack) -> None:
    code, text = pack.preview("data-science", None)
    assert code != 0
    assert "vastguard team add data-science" in text


def test_active_exception_relaxes_exactly_its_rule(pack: Pack) -> None:
    exception = {"allow": 4.5, "reason": "benchmark run", "approver": "platform-lead", "expires": "2999-12-31"}

    def allow(data: dict[str, Any]) -> None:
        data[str(RuleName.INSTANCE_MAX_DPH)].setdefault("exceptions", []).append(copy.deepcopy(exception))
        data[str(RuleName.POLICY_EXCEPTIONS)].setdefault("exceptions", []).append(
            {**exception, "rule": str(RuleName.INSTANCE_MAX_DPH)})

    config = pack.team_file("ml-research", allow)
    pack.edit("ml-research", group("pretrain", max_dph=4.5))
    try:
        code, text = pack.preview("ml-research", config)
        assert code == 0, text[-3000:]
        assert pattern(RuleName.POLICY_EXCEPTIONS, "active").search(text), text[-3000:]
    finally:
        pack.restore("ml-research")


def test_an_interruptible_group_within_the_rules_passes_and_up_rents_it_at_its_bid(pack: Pack) -> None:
    """The other side of the bid rules: a team that must rent its RTX 4090s interruptible, bids within its cap
    and keeps half its GPUs interruptible previews clean, and `up` rents the group at exactly its bid."""
    def rules(data: dict[str, Any]) -> None:
        data[str(RuleName.INTERRUPTIBLE_REQUIRED)].update(gpus=["RTX_4090"])
        data[str(RuleName.BID_CAP)].update(max_bid=0.3)
        data[str(RuleName.ON_DEMAND_GPU_SHARE)].update(max_on_demand_share=0.5)

    config = pack.team_file("ml-engineering", rules)
    pack.edit("ml-engineering", group("inference", interruptible=True, max_bid=0.25))
    try:
        code, text = pack.preview("ml-engineering", config)
        assert code == 0, text[-3000:]
        up = pack.ws.cli.run("up", "--yes", "--skip-preview", "--policy-pack",
                             str(team_policy_config("ml-engineering").parent.parent), "--policy-pack-config",
                             str(config), stack="ml-engineering", check=False)
        assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
        rented, _ = pack.emulator.market.all_instances(pack.accounts["ml-engineering"])
        bids = sorted((i.is_bid, float(i.dph_base)) for i in rented if i.offer.gpu_name == "RTX 4090")
        assert bids == [(True, 0.25), (True, 0.25)]
    finally:
        pack.restore("ml-engineering")
        pack.ws.destroy("ml-engineering")
    assert pack.live("ml-engineering") == 0
