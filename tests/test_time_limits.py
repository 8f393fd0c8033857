"""The long campaign the README documents (`--campaign-runs 40 --campaign-seed 7`) gets a time limit that grows
with its size, instead of pytest's 900 s (which stopped it after 29 runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e import conftest as e2e


@dataclass
class Item:
    name: str
    markers: list[Any] = field(default_factory=list)

    @property
    def originalname(self) -> str:
        return self.name

    def add_marker(self, marker: Any) -> None:
        self.markers.append(marker)


@dataclass
class Config:
    options: dict[str, int | None]

    def getoption(self, name: str) -> int | None:
        return self.options.get(name)


@pytest.mark.parametrize(("options", "campaign", "trials"), [
    ({}, 900.0, 2100.0),                                     # CI-sized: 4 runs, 20 trials
    ({"--campaign-runs": 40, "--crash-trials": 40}, 5100.0, 3900.0),  # the README's long ones
])
def test_the_campaign_and_the_trials_get_time_in_proportion(options: dict[str, int], campaign: float,
                                                           trials: float) -> None:
    items = [Item("test_fault_campaign"), Item("test_sigkill_trials"), Item("test_fleet_lifecycle")]
    e2e.pytest_collection_modifyitems(Config(options), items)  # type: ignore[arg-type]
    limits = [[m.args[0] for m in item.markers if m.name == "timeout"] for item in items]
    assert limits == [[campaign], [trials], []]
