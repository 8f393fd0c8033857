"""What every vastguard dynamic provider shares: nothing but its class is pickled into `__provider` (never a key,
a client or a lock), and the Vast endpoint and key are read at run time in `configure` (providers/settings.py)."""

from __future__ import annotations

import sys
from typing import Any

from pulumi.dynamic import ConfigureRequest, ResourceProvider

from providers.enginewatch import engine_address, exit_with_engine
from providers.host import widen_worker_pool
from providers.settings import ProviderSettings, settings_from


class ConfiguredProvider(ResourceProvider):
    _settings: ProviderSettings | None

    def __init__(self) -> None:
        super().__init__()
        self._settings = None

    # Keep only plain state when pickled into `__provider`: never a key, a client or a lock.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, _state: dict[str, Any]) -> None:
        self._settings = None

    def configure(self, req: ConfigureRequest) -> None:
        widen_worker_pool()
        exit_with_engine(engine_address(sys.argv))
        self._settings = settings_from(req.config.get)

    def _current_settings(self) -> ProviderSettings:
        # Without `configure` (e.g. an engine that skips it), fall back to the environment alone.
        return self._settings or settings_from(lambda _k: None)
