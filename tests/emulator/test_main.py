"""`python -m emulator` as a process: prints its URL, serves, stops cleanly on SIGTERM and saves state."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from emulator.testing import http

ROOT = Path(__file__).resolve().parents[2]


def test_runs_prints_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([{"api_key": "file-key-0001", "balance": 3, "username": "from-file"}]))
    state = tmp_path / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--state-file", str(state), "--provision-delay", "0",
         "--accounts-file", str(accounts), "--seed", "3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first_line: list[str] = []
        reader = threading.Thread(target=lambda: first_line.append(proc.stdout.readline() if proc.stdout else ""))
        reader.start()
        reader.join(timeout=20)
        assert first_line, "no start-up line within 20 s"
        match = re.search(r"(http://127\.0\.0\.1:\d+)", first_line[0])
        assert match, first_line[0]
        url = match.group(1)
        assert "seed 3" in first_line[0]
        user = http(url, "GET", "/api/v0/users/current", key="file-key-0001")
        assert user.status == 200 and user.json()["username"] == "from-file"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "file-key-0001" not in out + err
    assert json.loads(state.read_text())["seed"] == 3
