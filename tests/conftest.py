"""Shared pytest fixtures. Each section belongs to the folder it names; append, do not rewrite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from emulator import EmulatorServer
from emulator.testing import EmulatorAccount, make_account

pytest_plugins = ["tests.secrets_sweep"]  # team API keys must not outlive the session anywhere (issue 8)

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
