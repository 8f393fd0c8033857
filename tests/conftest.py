"""Shared pytest fixtures. Each section belongs to the folder it names; append, do not rewrite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from emulator import EmulatorServer
from emulator.testing import EmulatorAccount, make_account

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
