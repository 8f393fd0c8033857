"""The README's main command, run as a user runs it: the whole journey must finish and exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine import Engine, repo_root


def test_demo_journey_runs_to_the_end(engine: Engine, pulumi_home: Path) -> None:
    vastguard = Path(sys.executable).parent / "vastguard"
    env = {**os.environ, "PULUMI_HOME": str(pulumi_home), "COLUMNS": "160"}
    env.pop("PULUMI_BACKEND_URL", None)
    result = subprocess.run([str(vastguard), "demo", "--provision-delay", "0"], cwd=repo_root(), env=env,
                            capture_output=True, text=True, timeout=900, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    for team in ("ml-research", "ml-engineering", "data-science"):
        assert f"{team}: deployed fleet" in out
    assert "nothing was rented" in out
    assert "is not on the team's GPU allow-list" in out
    assert "Audit trail" in out
    assert "/day now -> $" in out
    assert "instances left on the emulator: 0" in out
    assert not (repo_root() / ".demo").exists()
