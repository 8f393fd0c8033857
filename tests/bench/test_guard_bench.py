"""Row 6's harness at a small size, without the engine: one guard pass reads each team with exactly one listing
and one charges query, and nothing is rejected by the rate limits (the timing is the benchmark's business)."""

from __future__ import annotations

from pathlib import Path

from bench.suite import guard


def test_a_guard_pass_reads_each_team_with_one_listing_and_one_charges_read(tmp_path: Path) -> None:
    logs: list[str] = []
    result = guard(tmp_path, 4, 3, logs.append)
    assert result.row == 6 and result.value == 1.0 and result.passed
    assert result.data["calls"] == {"list": 4, "charges": 4} and result.data["rejected"] == 0
    assert result.data["bound_s"] == 2 * 0.150  # four teams fit the workers: two round trips in all
    assert "one listing, one charges read" in result.detail and len(logs) == 1
