"""The state file: the whole market as one JSON document, replaced atomically.

Written by a background thread shortly after any change (and once more on shutdown), never in a request's
critical path, so a restarted emulator comes back with its accounts, instances, charges, rented offers and
clock. Atomic: write a temporary file beside it, fsync, rename over, so a crash mid-write leaves the
previous state intact rather than half a file. API keys are not in it (only their SHA-256).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from pydantic import ValidationError

from emulator.models import MarketBackend, MarketState

log = logging.getLogger("emulator.persistence")


class StateFileError(RuntimeError):
    """The state file exists but cannot be used; the emulator refuses to start over it silently."""


def load(path: Path) -> MarketState | None:
    if not path.exists():
        return None
    try:
        return MarketState.model_validate_json(path.read_bytes())
    except (ValidationError, ValueError, OSError) as exc:
        raise StateFileError(f"cannot read emulator state from {path}: {exc}; move it away to start fresh") from exc


def write_atomic(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Persister:
    """Saves the market to `path` whenever its version moved, every `interval` seconds and on `stop()`."""

    def __init__(self, market: MarketBackend, path: Path, *, interval: float = 0.25) -> None:
        self._market = market
        self._path = path
        self._interval = interval
        self._saved_version = -1
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="emulator-persister", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except OSError as exc:  # a full disk must not kill the server; report and retry next tick
                log.error("could not save emulator state to %s: %s", self._path, exc)

    def flush(self, *, force: bool = False) -> None:
        with self._write_lock:
            version = self._market.version
            if version == self._saved_version and not force:
                return
            data = self._market.snapshot_json()
            write_atomic(self._path, data)
            self._saved_version = version

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush(force=True)
