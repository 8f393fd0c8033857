"""bench.access at a tiny size: every key's requests succeed (a refused request would time the refusal, not the
work), and it reports each key and the check alone. The timings themselves are the benchmark's business."""

from __future__ import annotations

import json

import pytest

from bench import access


def test_measures_every_key_on_successful_requests(capsys: pytest.CaptureFixture[str]) -> None:
    best = access.measure(requests=30, repeat=1)
    assert set(best) == {"main", "team", "constrained", "authorize"}
    assert all(0 < v < 1 for v in best.values())
    access.main(["--requests", "30", "--repeat", "1", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["ratios"]) == {"team", "constrained"}
