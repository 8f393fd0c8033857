"""The session's leftover check (tests/leftovers.py) fails a run that leaves a process of this checkout running,
kills it, and says which; a run that reaps what it starts passes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.leftovers import ROOT, _ticks_since_boot, leftovers

pytest_plugins = ["pytester"]

LEAK = f'''
import subprocess, sys

def test_starts_and_forgets():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", {ROOT!r}], start_new_session=True)
'''

REAPED = f'''
import subprocess, sys

def test_starts_and_stops():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", {ROOT!r}])
    proc.kill()
    proc.wait()
'''


def _inner(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makeconftest('pytest_plugins = ["tests.leftovers"]\n')
    pytester.makepyfile(test_inner=source)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider")


def test_a_process_left_running_fails_the_session_and_is_killed(pytester: pytest.Pytester) -> None:
    since = _ticks_since_boot(os.getpid()) or 0
    result = _inner(pytester, LEAK)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*processes left running*", "killed *time.sleep(120)*"])
    time.sleep(0.2)
    assert not [cmd for cmd in leftovers(since).values() if "time.sleep(120)" in cmd]  # it is gone


def test_a_session_that_reaps_its_processes_passes(pytester: pytest.Pytester) -> None:
    result = _inner(pytester, REAPED)
    assert result.ret == pytest.ExitCode.OK
    assert "processes left running" not in result.stdout.str()


def test_only_processes_naming_this_checkout_count() -> None:
    since = _ticks_since_boot(os.getpid()) or 0
    other = subprocess.Popen(["sleep", "30"])  # another checkout's or the machine's: not this session's leak
    mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", ROOT])
    try:
        found = leftovers(since)
        assert mine.pid in found and other.pid not in found
    finally:
        for proc in (other, mine):
            proc.kill()
            proc.wait()
