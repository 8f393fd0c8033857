"""Running the official `vastai` CLI (1.9.1, from the venv) against an emulator, as a subprocess.

The key goes in through `VAST_API_KEY` in the child's environment, never argv (the house rule: secrets stay
out of `ps`). HOME and the XDG dirs are a throwaway directory, so the CLI's caches and its role file never
touch the real home, and `VAST_URL` points its start-up GPU-name lookup at the emulator too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VASTAI = Path(sys.executable).parent / "vastai"


@dataclass(frozen=True)
class Cli:
    url: str
    env: dict[str, str]
    key: str

    @classmethod
    def at(cls, url: str, key: str, home: Path) -> Cli:
        # The CLI creates its config/cache dirs with a check-then-makedirs; two parallel runs (Cli.parallel) race
        # on it and one dies with FileExistsError. Create them up front.
        for sub in (".config/vastai", ".cache/vastai", ".local/state/vastai", ".local/share/vastai"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "VASTAI_NO_UPDATE_CHECK": "1",
            "VAST_URL": url,
            "VAST_API_KEY": key,
            "COLUMNS": "200",
            "LANG": "C.UTF-8",
        }
        return cls(url, env, key)

    def with_key(self, key: str) -> Cli:
        """The same CLI home, run with another key."""
        return dataclasses.replace(self, env={**self.env, "VAST_API_KEY": key}, key=key)

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(VASTAI), "--url", self.url, *args]
        assert self.key not in " ".join(argv)
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60, check=False)
        if ok:
            assert result.returncode == 0, f"{args}: rc={result.returncode}\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stderr, result.stderr
        return result

    def raw(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--raw").stdout)

    def parallel(self, *commands: tuple[str, ...]) -> list[str]:
        """Independent commands side by side: each run spends a second importing the CLI."""
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            return list(pool.map(lambda argv: self.run(*argv).stdout, commands))
