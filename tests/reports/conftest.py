"""Fixtures for the reports tests: synthetic DIY backends and golden files.

Golden files live in tests/reports/golden/; regenerate them with VASTGUARD_UPDATE_GOLDEN=1 (then review the
diff: a golden test passes while regenerating, so regenerating proves nothing by itself).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"
FIXTURES = Path(__file__).parent / "fixtures"
UPDATE_GOLDEN = os.environ.get("VASTGUARD_UPDATE_GOLDEN") == "1"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def golden() -> Callable[[str, str | bytes], None]:
    def check(name: str, actual: str | bytes) -> None:
        path = GOLDEN_DIR / name
        data = actual.encode() if isinstance(actual, str) else actual
        if UPDATE_GOLDEN:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        assert path.exists(), f"no golden file {path}; create it with VASTGUARD_UPDATE_GOLDEN=1"
        expected = path.read_bytes()
        assert data == expected, (
            f"{name} differs from its golden file; if the change is intended, regenerate with "
            f"VASTGUARD_UPDATE_GOLDEN=1 and review the diff\n--- expected\n{expected.decode(errors='replace')}"
            f"\n--- actual\n{data.decode(errors='replace')}"
        )

    return check
