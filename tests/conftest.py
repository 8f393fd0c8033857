"""Shared pytest fixtures. Each section belongs to the folder it names; append, do not rewrite."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from emulator import EmulatorServer
from emulator.testing import EmulatorAccount, make_account
from tests.engine_guard import sitecustomize as guard

GUARD_DIR = Path(guard.__file__).resolve().parent

# Team API keys must not outlive the session anywhere (issue 8), nor may any process a test started.
pytest_plugins = ["tests.secrets_sweep", "tests.leftovers"]

# --- emulator (owned by emulator/; see emulator/README.md) -------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    """A started Vast.ai emulator on a free port (`emulator.url`): seed 1234, rate limits off, instances
    running as soon as they are rented, clock following real time. `emulator.market` is the backend."""
    with EmulatorServer(port=0, seed=1234, provision_delay=0.0, rate_limits=False) as server:
        yield server


@pytest.fixture
def emulator_account(emulator: EmulatorServer) -> Callable[..., EmulatorAccount]:
    """A factory of accounts on `emulator`: `acct = emulator_account(balance=50)`; `acct.api_key` is a fresh
    random key (kept out of repr)."""

    def make(*, balance: float | int | str | Decimal = 100, username: str | None = None,
             api_key: str | None = None) -> EmulatorAccount:
        return make_account(emulator, balance=balance, username=username, api_key=api_key)

    return make


# --- fault-injection campaign (tests/e2e/test_fault_campaign.py, tests/e2e/test_crash.py) --------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vastguard campaign", "size of the fault-injection campaign (CI-sized by default)")
    group.addoption("--campaign-runs", type=int, default=None,
                    help="randomised up/change/destroy runs under injected faults (default: CI size)")
    group.addoption("--crash-trials", type=int, default=20,
                    help="SIGKILL-of-`pulumi up` trials (default 20)")
    group.addoption("--campaign-seed", type=int, default=20261123,
                    help="seed of the campaign's random choices (runs are reproducible from it)")


# --- the engine marker: `-m "not engine"` starts no engine (tests/engine_guard/sitecustomize.py) -------------

ENGINE_FIXTURES = frozenset({"engine", "make_cli", "team_env", "pulumi_home"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that asks for the engine's fixtures must say so: the marker is what `-m "not engine"` selects on."""
    unmarked = [item.nodeid for item in items
                if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("engine")]
    if unmarked:
        raise pytest.UsageError("tests using the engine's fixtures without @pytest.mark.engine (add it, e.g. "
                                "`pytestmark = pytest.mark.engine`):\n  " + "\n  ".join(unmarked))


@pytest.fixture(scope="session")
def _engine_guard_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine-guard")


@pytest.fixture(autouse=True)
def _engine_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, _engine_guard_records: Path
                  ) -> Iterator[None]:
    """Outside tests marked `engine`, starting `pulumi` (here, or in any Python process the test starts) raises
    and fails the test, even if the test swallows the error."""
    if request.node.get_closest_marker("engine"):
        yield
        return
    record = _engine_guard_records / f"{abs(hash(request.node.nodeid))}.txt"
    monkeypatch.setenv(guard.ENV, str(record))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(GUARD_DIR), os.environ.get("PYTHONPATH")])))
    guard.install()
    try:
        yield
    finally:
        guard.uninstall()
    if record.exists():
        pytest.fail(f"{request.node.nodeid} started the Pulumi engine without @pytest.mark.engine:\n"
                    + record.read_text(), pytrace=False)
