"""The README's main command, run as a user runs it: the platform stack makes the teams and their keys, then a
virtual month of the teams' changes that ends with each team's invoice, the daily-spend chart (a file whose path
it prints), a reconciliation that finds the rental made outside Pulumi, and an emulator with no instance and no
team left."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine import Engine, repo_root

pytestmark = pytest.mark.engine


def test_demo_shows_a_month(engine: Engine, pulumi_home: Path, tmp_path: Path) -> None:
    vastguard = Path(sys.executable).parent / "vastguard"
    env = {**os.environ, "PULUMI_HOME": str(pulumi_home), "COLUMNS": "160"}
    env.pop("PULUMI_BACKEND_URL", None)
    out_dir = tmp_path / "chargeback"
    result = subprocess.run([str(vastguard), "demo", "--month", "2026-10", "--out", str(out_dir)], cwd=repo_root(),
                            env=env, capture_output=True, text=True, timeout=900, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    for team in ("ml-research", "ml-engineering", "data-science"):
        assert f"{team}: deployed fleet" in out
        assert f"GPU chargeback: {team}, 2026-10" in out  # each team's invoice
        assert (out_dir / f"{team}.md").read_text().startswith(f"# GPU chargeback: {team}, 2026-10")
    # The month passes on the emulator's clock: the story is dated in October, the reports just after it.
    assert "Thu 01 Oct 09:00 (virtual)" in out and "Sat 17 Oct 14:00 (virtual): A rental outside Pulumi" in out
    assert "Sun 01 Nov 00:05 (virtual)" in out
    assert "nothing was rented" in out
    assert "is not on the team's GPU allow-list" in out
    assert "Audit trail" in out
    assert "/day now -> $" in out
    # The chart: a file whose path the demo prints, one panel per team with its budget.
    chart = re.search(r"The chart of the month: (\S+\.svg)", out)
    assert chart, out[-3000:]
    svg = ET.parse(chart[1]).getroot()  # noqa: S314 -- our own file
    panels = {g.get("id") for g in svg.iter("{http://www.w3.org/2000/svg}g")}
    assert panels == {"team-ml-research", "team-ml-engineering", "team-data-science"}
    assert "budget $200.00/day" in Path(chart[1]).read_text()
    # The reconciliation finds the shadow rental and nothing else.
    assert "shadow rental found: yes" in out
    assert re.search(r"data-science\s+│\s+\d+\s+│\s+\(no stack\)", out)
    # ml-research: its hours (on demand, interruptible, Vast's GPU hours), then reconstructed, billed, no difference.
    assert re.search(r"│ ml-research\s+│(?:\s+[\d,.]+\s+│){3}\s+\$[\d,.]+\s+│\s+\$[\d,.]+\s+│\s+\$0\.00 │", out)
    assert "instances left on the emulator: 0; teams left: 0" in out
    assert not (repo_root() / ".demo").exists()
    # It starts from the platform stack: three teams with their keys, delivered as envelopes to team stacks
    # that hold no key; the preview key previews and cannot rent.
    assert "platform: passed" in out
    assert len(re.findall(r"│ #\d+\s+│ #\d+\s+│", out)) == 3, out[:5000]
    for team in ("ml-research", "ml-engineering", "data-science"):
        assert f"vastguard: {team}'s preview key #" in out
    assert "Vast refuses its rent (401)" in out
