"""Where the provider finds its Vast.ai endpoint and key: stack config first, then the environment.

The key is read at run time in the provider process (`configure`), never captured when the provider object is
pickled into state, and never printed: `ProviderSettings.__repr__` hides it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.stack_config import API_KEY_CONFIG, PROVISION_TIMEOUT_CONFIG, URL_CONFIG
from vastclient import API_KEY_ENV, MISSING_KEY_HELP, URL_ENV, MissingApiKeyError

DEFAULT_PROVISION_TIMEOUT = 900.0


@dataclass(frozen=True)
class ProviderSettings:
    api_key: str | None = field(repr=False)
    base_url: str | None
    provision_timeout: float = DEFAULT_PROVISION_TIMEOUT

    def require_key(self) -> str:
        if not self.api_key:
            raise MissingApiKeyError(MISSING_KEY_HELP)
        return self.api_key


def settings_from(get: Callable[[str], Any], environ: Mapping[str, str] | None = None) -> ProviderSettings:
    """`get` looks up fully-qualified stack config keys (the dynamic provider's `Config.get`)."""
    env = os.environ if environ is None else environ
    key = get(API_KEY_CONFIG) or env.get(API_KEY_ENV) or None
    url = get(URL_CONFIG) or env.get(URL_ENV) or None
    timeout_raw = get(PROVISION_TIMEOUT_CONFIG) or env.get("VASTGUARD_PROVISION_TIMEOUT")
    try:
        timeout = float(timeout_raw) if timeout_raw else DEFAULT_PROVISION_TIMEOUT
    except ValueError:
        raise ValueError(
            f"{PROVISION_TIMEOUT_CONFIG} must be a number of seconds, got {timeout_raw!r}; "
            f"fix it with: pulumi config set {PROVISION_TIMEOUT_CONFIG} 900"
        ) from None
    return ProviderSettings(api_key=str(key) if key else None, base_url=str(url) if url else None,
                            provision_timeout=timeout)
