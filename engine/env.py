"""The environment every project command runs Pulumi with."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from engine.build import Engine

# Local demo only: it protects the secrets of the embedded local backend. Real teams set their own
# PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE), or use a KMS secrets provider.
DEFAULT_PASSPHRASE = "vastguard-local"  # noqa: S105 -- documented local-demo default, not a secret


PROVIDER_PARALLEL = 64


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def project_env(
    engine: Engine, *, base: Mapping[str, str] | None = None, state_dir: Path | None = None
) -> dict[str, str]:
    """Pinned engine first on PATH; a file backend in the repo unless the user chose one; no Pulumi Cloud."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join([str(engine.bin_dir), env.get("PATH", "")])
    if not env.get("PULUMI_BACKEND_URL"):
        state = state_dir or repo_root() / ".pulumi-state"
        state.mkdir(parents=True, exist_ok=True)
        env["PULUMI_BACKEND_URL"] = f"file://{state}"
    if not env.get("PULUMI_CONFIG_PASSPHRASE") and not env.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        env["PULUMI_CONFIG_PASSPHRASE"] = DEFAULT_PASSPHRASE
    env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    env.setdefault("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    # The engine's default parallelism is 4 x CPU cores (8 on a CI runner), sized for CPU-bound providers. A
    # Vast create is mostly waiting for a machine to boot, and the provider paces its own requests by Vast's
    # rate limits, so a fleet rolls out far faster with more in flight (the provider serves 64 at once).
    env.setdefault("PULUMI_PARALLEL", str(PROVIDER_PARALLEL))
    return env
