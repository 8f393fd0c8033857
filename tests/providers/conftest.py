"""The provider's fixtures: a `VastInstanceProvider` configured for a fresh account on the test emulator."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emulator import EmulatorServer
from emulator.testing import EmulatorAccount
from providers.settings import ProviderSettings
from providers.vast_instance import VastInstanceProvider


@pytest.fixture
def provider(emulator: EmulatorServer, emulator_account: Callable[..., EmulatorAccount]
             ) -> tuple[VastInstanceProvider, EmulatorAccount]:
    account = emulator_account(balance=100)
    p = VastInstanceProvider()
    p._settings = ProviderSettings(api_key=account.api_key, base_url=emulator.url, provision_timeout=30)
    return p, account
