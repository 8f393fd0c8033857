from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.budget.world import Receiver, World, world

START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def place(tmp_path: Path) -> Iterator[World]:
    yield from world(tmp_path, start=START)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()
