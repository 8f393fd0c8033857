"""The guard in-process against the emulator's frozen clock: crossings alerted once (two guards at once too),
pauses that stop and mark every running instance, previews' readings that see them, lifts at the window's end,
resumes on the record, idle GPUs."""

from __future__ import annotations

import threading
from decimal import Decimal

from budget.alerts import Alerter
from budget.cli import connector
from budget.guard import TeamOutcome, resume
from budget.keys import EnvKeys
from fleet.budget_log import Actor
from fleet.labels import marks, stack_of
from tests.budget.world import Receiver, World
from vastclient.spend import team_spend

TEAM = "vision"
TAGGED = "notebook [vg:vision/notebook-0#0123abcd]"


def both_at_once(place: World, receiver: Receiver) -> list[TeamOutcome]:
    """Two guards (two CI jobs, say) run the same pass at the same moment."""
    results: list[list[TeamOutcome]] = []
    policies = place.policies(TEAM)
    guards = [place.guard(Alerter(webhook=receiver.url), who=f"guard-{i}") for i in range(2)]
    threads = [threading.Thread(target=lambda g=g: results.append(g.run(policies))) for g in guards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = [o for r in results for o in r]
    assert all(not o.errors for o in outcomes), [o.errors for o in outcomes]
    return outcomes


def live(place: World) -> dict[int, tuple[str | None, str | None]]:
    with place.client(TEAM) as vast:
        return {i.id: (i.actual_status, i.label) for i in vast.list_instances()}


def test_crossings_alert_once_and_a_pause_stops_and_marks_every_running_instance(place: World,
                                                                                 receiver: Receiver) -> None:
    place.add_team(TEAM, daily=10, action="pause")
    place.control.call("POST", f"/accounts/{place.teams[TEAM].id}/balance", {"add": 100})
    ours, shadow = place.rent(TEAM, label=TAGGED), place.rent(TEAM, label="quick test")
    with place.client(TEAM) as vast:
        burn = sum(Decimal(str(i.dph_total)) for i in vast.list_instances())
    hours_to_budget = float(Decimal(10) / burn)

    place.at(1)
    both_at_once(place, receiver)
    assert receiver.bodies == []  # well under budget: nothing to say

    place.at(hours_to_budget * 0.85)
    both_at_once(place, receiver)
    assert len(receiver.bodies) == 1 and "of its daily budget" in receiver.texts()[0], receiver.texts()
    assert receiver.bodies[0]["blocks"][0]["type"] == "header"  # Slack's incoming-webhook shape

    place.at(hours_to_budget * 1.01)
    both_at_once(place, receiver)
    both_at_once(place, receiver)
    assert len(receiver.bodies) == 2, receiver.texts()
    assert "has spent its daily budget" in receiver.texts()[1] and "pausing the team" in receiver.texts()[1]
    key = "day:2026-11-01@UTC"
    for status, label in live(place).values():
        assert status == "stopped"
        assert marks(label) == {"paused": key}
    assert stack_of(live(place)[ours][1]) == "vision"  # the ownership tag stays last
    stops = [a for a in place.log.actions(TEAM) if a.action == "stop"]
    assert sorted(a.instance_id for a in stops) == sorted([ours, shadow])
    assert all(a.reason == "pause" and a.window == key for a in stops)

    # What a preview reads: the pause, for the current window.
    with place.client(TEAM) as vast:
        reading, _, _ = team_spend(vast, timezone="UTC", kinds=("day",))
    assert reading.paused_for() == [key]

    # Someone starts one again with the team's key: the next pass stops it again, and says nothing new.
    with place.client(TEAM) as vast:
        vast.start(shadow)
    place.at(hours_to_budget * 1.05)
    both_at_once(place, receiver)
    assert live(place)[shadow][0] == "stopped" and len(receiver.bodies) == 2

    # The next day the pause is lifted: everything it stopped runs again, unmarked.
    place.at(24.1)
    both_at_once(place, receiver)
    for status, label in live(place).values():
        assert status == "running" and "paused" not in marks(label)
    starts = [a for a in place.log.actions(TEAM) if a.action == "start"]
    assert sorted(a.instance_id for a in starts) == sorted([ours, shadow]) and {a.reason for a in starts} == {"lift"}


def test_a_resume_lifts_the_pause_on_the_record_and_the_guard_leaves_the_window_alone(place: World,
                                                                                    receiver: Receiver) -> None:
    place.add_team(TEAM, daily=2, action="pause")
    place.control.call("POST", f"/accounts/{place.teams[TEAM].id}/balance", {"add": 50})
    place.rent(TEAM, label=TAGGED)
    place.at(12)
    place.guard(Alerter(webhook=receiver.url)).run(place.policies(TEAM))
    assert {s for s, _ in live(place).values()} == {"stopped"}

    outcome = resume(place.policies(TEAM)[0], log=place.log, keys=EnvKeys(place.env),
                     connect=connector(place.srv.url, pace=False),
                     actor=Actor(who="lead@laptop", command="vastguard resume"), reason="demo for the board",
                     alerter=Alerter(webhook=receiver.url))
    assert not outcome.errors and any("resumed by lead@laptop" in line for line in outcome.lines)
    assert {s for s, _ in live(place).values()} == {"running"}
    assert "resumed" in receiver.texts()[-1]

    place.at(14)
    place.guard(Alerter(webhook=receiver.url)).run(place.policies(TEAM))
    assert {s for s, _ in live(place).values()} == {"running"}  # over budget, but resumed for this window


def test_an_idle_gpu_is_marked_then_stopped_once_its_window_has_passed(place: World, receiver: Receiver) -> None:
    place.add_team(TEAM, daily=100, idle={"max_gpu_util": 0.1, "minutes": 60, "action": "stop"})
    place.control.call("POST", f"/accounts/{place.teams[TEAM].id}/balance", {"add": 100})
    busy, idle = place.rent(TEAM, label="busy"), place.rent(TEAM, label="idle")
    place.control.gpu_util(busy, util=0.9)
    place.control.gpu_util(idle, points=[{"at": place.now().timestamp(), "util": 0.8},
                                         {"at": place.now().timestamp() + 1800, "util": 0.02}])
    guard = place.guard(Alerter(webhook=receiver.url))
    for hours in (0.25, 0.5, 0.75, 1.0, 1.25):
        place.at(hours)
        assert not any(o.errors for o in guard.run(place.policies(TEAM)))
    assert live(place)[idle][0] == "running"  # first seen under 10% at 00:30 (the curve crosses it at ~00:28)
    for hours in (1.5, 1.75):
        place.at(hours)
        guard.run(place.policies(TEAM))
    status = live(place)
    assert status[idle][0] == "stopped" and status[busy][0] == "running"
    assert "idle" not in marks(status[idle][1])
    assert [t for t in receiver.texts() if "idle" in t] == [receiver.texts()[-1]]  # one alert
    (stop,) = [a for a in place.log.actions(TEAM) if a.reason == "idle"]
    assert stop.instance_id == idle


def test_a_team_without_a_key_is_reported_and_the_others_are_guarded(place: World, receiver: Receiver) -> None:
    place.add_team(TEAM, daily=10)
    place.add_team("audio", daily=10)
    del place.env["VASTGUARD_KEY_AUDIO"]
    outcomes = {o.team: o for o in place.guard(Alerter(webhook=receiver.url)).run(place.policies())}
    assert outcomes["audio"].errors == [
        "no Vast key for team audio: export VASTGUARD_KEY_AUDIO or, for a team taking its keys from the platform "
        "stack, VASTGUARD_DEPLOY_SECRET_AUDIO (the key acts in the team's account, with instance_read, "
        "instance_write and billing_read)"]
    assert not outcomes[TEAM].errors and outcomes[TEAM].lines
