"""Fixtures that run the real Pulumi engine (the pinned CLI built by ./dev setup) on a local file backend,
against the Vast.ai emulator."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emulator import Account, EmulatorServer
from emulator.bodies import ClockBody
from emulator.models import Instance as EmulatedInstance
from engine import Engine, ensure, repo_root
from vastguard.pulumi_cli import PulumiCLI
from vastguard.workspace import Workspace

VENV = repo_root() / ".venv"


@pytest.fixture(scope="session")
def engine() -> Engine:
    # No skip: the engine is part of the test setup (./dev test builds it); if it cannot be provided, the
    # tests that need it must fail with ensure()'s message saying what to install.
    return ensure(log=lambda _line: None)


@pytest.fixture(scope="session")
def pulumi_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pulumi-home")


def write_project(directory: Path, *, name: str, main: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.yaml").write_text(
        f"name: {name}\n"
        "runtime:\n  name: python\n  options:\n"
        f"    virtualenv: {VENV}\n"
    )
    (directory / "__main__.py").write_text(main)


@pytest.fixture
def make_cli(engine: Engine, pulumi_home: Path, tmp_path: Path) -> Callable[[Path], PulumiCLI]:
    def make(project_dir: Path) -> PulumiCLI:
        return PulumiCLI.for_project(
            engine, project_dir, state_dir=tmp_path / "state",
            extra_env={"PULUMI_HOME": str(pulumi_home), "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}"},
        )

    return make


@dataclass
class TeamEnv:
    """One team's workspace on a running emulator, with the key it was given and its emulated account."""

    team: str
    ws: Workspace
    emulator: EmulatorServer
    account: Account
    api_key: str

    def live(self) -> list[EmulatedInstance]:
        """The team's instances as the marketplace sees them (destroyed ones excluded)."""
        return self.emulator.market.all_instances(self.account)[0]


def early_in_the_month(srv: EmulatorServer) -> None:
    """Vast's clock at 00:05 UTC on the 1st of this month, running: budgets are judged on spend + projection to
    the window's end on Vast's clock (24:00, the month's end), so a test that expects a denial (or none) from a
    projection does not depend on when it runs. Call it before anything is rented (the clock never goes back
    under a live instance)."""
    start = datetime.now(UTC).replace(day=1, hour=0, minute=5, second=0, microsecond=0)
    srv.market.update_clock(ClockBody(set=start.timestamp()))


@pytest.fixture
def fleet_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(port=0, seed=7, provision_delay=0) as srv:
        yield srv


@pytest.fixture
def team_env(engine: Engine, pulumi_home: Path, tmp_path: Path, fleet_emulator: EmulatorServer
             ) -> Callable[[str], TeamEnv]:
    def make(team: str) -> TeamEnv:
        api_key = f"{team}-{secrets.token_hex(16)}"
        account = fleet_emulator.create_account(api_key=api_key, balance=1000, username=team)
        ws = Workspace.create(engine, tmp_path / "ws", state_dir=tmp_path / "state",
                              extra_env={"PULUMI_HOME": str(pulumi_home)})
        ws.init_team(team, api_key=api_key, vast_url=fleet_emulator.url)
        return TeamEnv(team, ws, fleet_emulator, account, api_key)

    return make


# --- fault-injection campaign report (tests/e2e/campaign.py; owned by the campaign, append-only) ---------------


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    """The campaign's and the crash trials' tallies (runs, faults injected and survived), after the run."""
    from tests.e2e.campaign import terminal_summary

    terminal_summary(terminalreporter, config)


# --- time limits that scale with the size asked for (the campaign, the crash trials) --------------------------

SCALED = {"test_fault_campaign": ("--campaign-runs", 4, 120.0), "test_sigkill_trials": ("--crash-trials", 20, 90.0)}
"""test name -> (the option that sizes it, its default, seconds allowed per run or trial on a loaded 2-core
machine: ~35 s a campaign run and ~25 s a trial when quiet)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """pytest's 900 s timeout stopped the README's long campaign (`--campaign-runs 40`) after 29 runs: these two
    get a limit that grows with the number of runs or trials asked for."""
    for item in items:
        scaled = SCALED.get(getattr(item, "originalname", item.name))
        if scaled is None:
            continue
        option, default, per_run = scaled
        size = config.getoption(option) or default
        item.add_marker(pytest.mark.timeout(max(900.0, 300.0 + per_run * size)))
