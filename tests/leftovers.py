"""No process outlives the session: a policy pack, an emulator, a Python child of this checkout that a test
started and never reaped fails the run (and is killed), so a leak shows in CI instead of on a developer's machine.

Found by /proc: processes started after the session began whose command line names this checkout (its `.venv`
Python, its policy pack, its program). The engine's own binaries live in a shared cache, but every child they
start for this project (the pack, the language host's program) names the checkout. A short grace period lets
processes that are already exiting (an engine's plugins after it stops) finish first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[1])
GRACE = 5.0


def _ticks_since_boot(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it start at the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def leftovers(since: int, root: str = ROOT) -> dict[int, str]:
    """Processes started at or after `since` (clock ticks since boot) whose command line names `root`."""
    mine = _ancestors()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        pid = int(entry.name)
        started = _ticks_since_boot(pid)
        cmd = _cmdline(pid)
        if started is not None and started >= since and root in cmd:
            found[pid] = cmd
    return found


class LeftoverCheck:
    def __init__(self) -> None:
        self.since = _ticks_since_boot(os.getpid()) or 0
        self.found: dict[int, str] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not Path("/proc/self/stat").exists():
            return  # no /proc (macOS): nothing to look at
        deadline = time.monotonic() + GRACE
        while (found := leftovers(self.since)) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.found = found
        for pid in found:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, signal.SIGKILL)
        if found:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.found:
            return
        terminalreporter.section("processes left running", red=True)
        for pid, cmd in sorted(self.found.items()):
            terminalreporter.write_line(f"killed {pid}: {cmd[:300]}")
        terminalreporter.write_line("a test started these and never stopped them: find its fixture or helper")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(LeftoverCheck(), "vastguard-leftovers")
