"""The benchmark harness at small sizes, through the real engine: what it measures is asserted exactly where
the count does not depend on timing (one rent per instance, one search per query, no status read per
instance, nothing mutating in a preview); the timed targets are the benchmark's business, not a test's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import render
from bench.suite import Result, fleet_of, lower_bound, policy_overhead, rate_limit_bound, scaling_and_economy

pytestmark = pytest.mark.engine


def test_fleets_are_groups_of_fifty_over_five_gpu_models() -> None:
    fleet = fleet_of(120)
    assert [g["count"] for g in fleet.values()] == [50, 50, 20]
    assert [g["gpu"] for g in fleet.values()] == ["A100", "H100_SXM", "RTX_4090"]
    assert lower_bound(50) == 50 + 1 + 2 + 1
    assert lower_bound(500) == 500 + 5 + 20 + 1
    assert rate_limit_bound(100, 0.15) == pytest.approx((100 - 4.5) / 4.5 + 0.3)


def test_up_rents_once_per_instance_and_searches_once_per_query(tmp_path: Path) -> None:
    logs: list[str] = []
    scaling, economy = scaling_and_economy(tmp_path, (4, 12), logs.append)
    ours = economy.data["ours"]
    assert ours["create"] == 4
    assert ours["search"] == 1
    assert "show" not in ours  # status reads are shared listings, never one per instance
    assert economy.data["mutating_in_preview"] == 0
    assert economy.data["large"]["create"] == 12
    seeds = economy.data["seeds"]
    assert seeds["search"] == 4 and seeds["list"] == 4 and seeds["create"] == 4
    assert sum(ours.values()) < sum(seeds.values())
    assert scaling.value > 0 and len(logs) == 2
    table = render([scaling, economy])
    assert "API calls for up of 4 new instances" in table


def test_a_row_fails_when_its_value_misses_the_target() -> None:
    assert not Result(1, "x", 1.3, 1.15, "").passed
    assert Result(1, "x", 1.1, 1.15, "").passed
    assert "FAIL" in render([Result(4, "y", 2.0, 1.3, "d")])


def test_the_policy_row_times_a_no_op_pack_beside_ours(tmp_path: Path) -> None:
    logs: list[str] = []
    result = policy_overhead(tmp_path, (2,), 1, logs.append)
    run = result.data["2"]
    assert {"without_s", "noop_s", "with_s"} <= set(run) and result.target == 1.05
    assert result.value == pytest.approx(run["with_s"] / run["noop_s"])
    assert run["ratio_to_no_pack"] == pytest.approx(run["with_s"] / run["without_s"])
    assert "no-op pack" in logs[0]
