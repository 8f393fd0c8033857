"""Pinned developer tools, built from the Go module proxy or installed from npm, into the engine's versioned cache.

`ensure_actionlint()` returns the path of actionlint (the GitHub Actions workflow linter) at ACTIONLINT_VERSION:
from `<cache>/actionlint-<version>/actionlint` if built before, else `go install` into that directory (about a
minute, once). Used by tests/ci/test_workflows.py, so a fresh machine builds it during `./dev test`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from engine.build import EngineError, cache_root

ACTIONLINT_VERSION = "v1.7.12"
ACTIONLINT_MODULE = "github.com/rhysd/actionlint/cmd/actionlint"


def actionlint_dir(version: str = ACTIONLINT_VERSION) -> Path:
    return cache_root() / f"actionlint-{version}"


def ensure_actionlint(version: str = ACTIONLINT_VERSION) -> Path:
    target = actionlint_dir(version)
    binary = target / "actionlint"
    if os.access(binary, os.X_OK):
        return binary
    go = shutil.which("go")
    if go is None:
        raise EngineError(f"actionlint {version} is built from the Go module proxy, but `go` is not installed: "
                          "install Go >= 1.25 (https://go.dev/dl/) and rerun ./dev test")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".building-actionlint-") as tmp:
        env = {**os.environ, "GOBIN": tmp, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
        proc = subprocess.run([go, "install", f"{ACTIONLINT_MODULE}@{version}"], env=env, cwd=tmp,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise EngineError(f"`go install {ACTIONLINT_MODULE}@{version}` failed (exit {proc.returncode}):\n"
                              f"{proc.stderr.strip()}")
        staging = Path(tmp) / "staged"
        staging.mkdir()
        (Path(tmp) / "actionlint").rename(staging / "actionlint")
        if not binary.exists():
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
    return binary


AZURITE_VERSION = "3.37.0"


def azurite_dir(version: str = AZURITE_VERSION) -> Path:
    return cache_root() / f"azurite-{version}"


def ensure_azurite(version: str = AZURITE_VERSION) -> Path:
    """The Azurite Blob server (Microsoft's local Azure Storage emulator) at `version`, from the npm registry into
    `<cache>/azurite-<version>` (about half a minute, once). Used by the reports' Azure Blob backend tests."""
    target = azurite_dir(version)
    binary = target / "node_modules" / ".bin" / "azurite-blob"
    if os.access(binary, os.X_OK):
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise EngineError(f"Azurite {version} installs from the npm registry, but `node`/`npm` are not installed: "
                          "install Node.js >= 18 (Debian: apt-get install nodejs npm) and rerun ./dev test")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".installing-azurite-") as tmp:
        staging = Path(tmp) / "staged"
        proc = subprocess.run([npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--loglevel=error",
                               f"azurite@{version}"], capture_output=True, text=True, check=False, timeout=600)
        if proc.returncode != 0:
            raise EngineError(f"`npm install azurite@{version}` failed (exit {proc.returncode}):\n"
                              f"{proc.stderr.strip()}")
        if not binary.exists():  # another process may have finished first: keep its copy
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
    return binary
