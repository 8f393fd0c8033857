"""Run code against the official `vastai` package (1.9.1), installed in the venv as a dev dependency.

It shares its top-level name with our package, so it is only importable from a process whose sys.path
does not start at the repository root: a subprocess started in a scratch directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_official(code: str, *args: str, scratch: Path, extra_env: dict[str, str] | None = None) -> str:
    env = {
        **os.environ,
        "HOME": str(scratch),
        "XDG_CONFIG_HOME": str(scratch),
        "XDG_CACHE_HOME": str(scratch),
        "VASTAI_NO_UPDATE_CHECK": "1",
        "PYTHONPATH": "",
        **(extra_env or {}),
    }
    env.pop("VAST_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env, cwd=scratch, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"official vastai run failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout
