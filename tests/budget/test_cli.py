"""The budget commands as a person or the scheduled workflow runs them (`vastguard guard | budget allocate |
resume`), and what a Vast error in the middle of a pause leaves behind."""

from __future__ import annotations

import argparse

import pytest

from budget.alerts import Alerter
from budget.cli import parse_interval
from tests.budget.world import Receiver, World
from vastguard.cli import main

TEAM = "vision"


def argv(place: World, *command: str) -> list[str]:
    return [*command, "--team-files", str(place.team_files), "--backend", f"file://{place.root / 'state'}",
            "--vast-url", place.srv.url]


def test_guard_allocate_and_resume_from_the_command_line(place: World, receiver: Receiver,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    place.add_team(TEAM, daily=5, monthly=40, action="pause", prepaid={"period": "month", "reclaim": True})
    summary = place.root / "summary.md"
    for name, value in place.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(argv(place, "budget", "allocate")) == 0
    assert "top-up $40.00 (ledger #1)" in capsys.readouterr().out
    place.rent(TEAM, label="box")
    place.at(23)
    assert main([*argv(place, "guard"), "--webhook", receiver.url]) == 0
    out = capsys.readouterr().out
    assert "day:2026-11-01@UTC: paused (recorded)" in out and receiver.url not in out
    assert any("has spent its daily budget" in t for t in receiver.texts())
    assert "## vastguard guard" in summary.read_text() and "has spent its daily budget" in summary.read_text()
    assert main([*argv(place, "resume", TEAM), "--reason", "customer demo"]) == 0
    assert "resumed by" in capsys.readouterr().out


def test_a_vast_error_mid_pause_says_what_is_left_and_the_next_pass_finishes(place: World,
                                                                              receiver: Receiver) -> None:
    place.add_team(TEAM, daily=2, action="pause")
    place.control.call("POST", f"/accounts/{place.teams[TEAM].id}/balance", {"add": 100})
    first, second = place.rent(TEAM, label="a"), place.rent(TEAM, label="b")
    place.at(12)
    place.control.fault(operation="manage", status=503, count=30)  # every stop and relabel fails, past retries
    (outcome,) = place.guard(Alerter(webhook=receiver.url)).run(place.policies(TEAM))
    assert outcome.errors and all("run the guard again" in e for e in outcome.errors)
    place.control.call("DELETE", "/faults")
    (outcome,) = place.guard(Alerter(webhook=receiver.url)).run(place.policies(TEAM))
    assert not outcome.errors
    with place.client(TEAM) as vast:
        assert {i.id: i.actual_status for i in vast.list_instances()} == {first: "stopped", second: "stopped"}
    assert sum(1 for t in receiver.texts() if "has spent its daily budget" in t) == 1  # alerted once


def test_intervals_read_as_people_write_them() -> None:
    assert [parse_interval(t) for t in ("900", "15m", "1h", "30s", "2.5m")] == [900, 900, 3600, 30, 150]
    for bad in ("0", "fifteen", "-5m", "15d"):
        with pytest.raises(argparse.ArgumentTypeError, match="not an interval"):
            parse_interval(bad)


def test_a_missing_team_file_is_an_error_naming_it(place: World, capsys: pytest.CaptureFixture[str]) -> None:
    place.team_files.mkdir(parents=True, exist_ok=True)
    assert main([*argv(place, "guard"), "--team", "nobody"]) == 1
    assert "nobody.json: invalid team file" in capsys.readouterr().err
