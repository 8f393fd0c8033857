"""Folding history into audit events and billing timelines: identities, times, rates, unknowns."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from fleet.instance import InstanceRecord
from reports.fold import VastClock, fold_stack
from reports.models import StackFold
from reports.pulumi_state import (
    HistoryEntry,
    InstanceResource,
    Snapshot,
    UpdateRecord,
    parse_instance,
)
from reports.sources import StackRef, open_source
from tests.reports.conftest import utc
from tests.reports.synthetic import Rented, StackWriter


def fold(root: Path, stack: str, *, vast_clock: VastClock = "running") -> StackFold:
    source = open_source(f"file://{root}")
    return fold_stack("vastguard", stack, source.entries(StackRef("vastguard", stack)), vast_clock=vast_clock)


def test_segments_follow_creation_stop_and_delete_on_the_vast_clock(tmp_path: Path) -> None:
    w = StackWriter(tmp_path, "ml-research", "ml-research")
    w.rent(Rented("a", 11, "RTX 4090", 0.40, storage_cost=0.15, disk_gb=48))
    w.record(start=utc(2026, 11, 1, 10))
    w.set_state("a", "stopped")
    w.record(start=utc(2026, 11, 2, 10), refresh=True)
    w.remove("a")
    w.record(start=utc(2026, 11, 3, 10))
    (tl,) = fold(tmp_path, "ml-research").timelines
    running, stopped = tl.segments
    assert (running.start, running.end, running.component) == (utc(2026, 11, 1, 10, 0, 20), utc(2026, 11, 2, 10, 0, 20),
                                                                 "running")
    assert running.hourly == Decimal("0.4") and running.start_basis == running.end_basis == "vast"
    assert stopped.component == "storage" and stopped.hourly == Decimal("0.15") * 48 / 720
    assert stopped.end == utc(2026, 11, 3, 10, 0, 40)  # the checkpoint written at the end of the delete
    assert stopped.end_basis == "update"


def test_a_replacement_is_a_new_instance_under_the_same_name(tmp_path: Path) -> None:
    w = StackWriter(tmp_path, "s", "team-a")
    w.rent(Rented("a", 1, "A100 PCIE", 1.0))
    w.record(start=utc(2026, 11, 1))
    w.remove("a")
    w.rent(Rented("a", 2, "A100 SXM4", 1.2))
    w.record(start=utc(2026, 11, 2))
    result = fold(tmp_path, "s")
    event = result.events[1]
    assert [(c.action, c.instance_id) for c in event.changes] == [("created", 2), ("deleted", 1)]
    by_id = {tl.instance_id: tl for tl in result.timelines}
    assert by_id[1].segments[-1].end == utc(2026, 11, 2, 0, 0, 40)
    assert by_id[2].segments[-1].end is None and by_id[2].gpu_name == "A100 SXM4"
    assert {tl.name for tl in result.timelines} == {"a"}


def test_without_the_clock_contract_times_fall_back_to_pulumi_timestamps(tmp_path: Path) -> None:
    """Today's provider writes no vast_* fields: Vast's own start_date dates the creation, the resource's
    `modified` dates the stop, both exactly when wall and Vast clocks agree."""
    w = StackWriter(tmp_path, "s", "team-a", clock_fields=False)
    w.rent(Rented("a", 1, "RTX 4090", 0.5))
    w.record(start=utc(2026, 11, 1))
    w.set_state("a", "stopped")
    w.record(start=utc(2026, 11, 2))
    (tl,) = fold(tmp_path, "s").timelines
    running, stopped = tl.segments
    assert running.start == utc(2026, 11, 1, 0, 0, 20) and running.start_basis == "vast"  # start_date
    assert running.end == utc(2026, 11, 2, 0, 0, 20) and running.end_basis == "update"  # modified
    assert stopped.end is None


def _virtual_month(root: Path, *, frozen: bool) -> StackWriter:
    """All operations run within one wall-clock hour while Vast's clock jumps days between them."""
    w = StackWriter(root, "s", "team-a")
    day = timedelta(days=1)

    def at(days: int) -> None:
        if frozen:
            w.frozen_at = utc(2026, 11, 1) + days * day
        else:
            w.skew = utc(2026, 11, 1) - utc(2026, 12, 24) + days * day

    at(0)
    w.rent(Rented("a", 1, "RTX 4090", 0.5))
    w.rent(Rented("b", 2, "H100 SXM", 3.0))
    w.record(start=utc(2026, 12, 24, 10, 0))
    at(3)
    w.set_state("a", "stopped")
    w.remove("b")  # deleted in an update that also touches `a`: a same-operation clock sample exists
    w.record(start=utc(2026, 12, 24, 10, 5))
    at(7)
    w.remove("a")  # a pure delete: the only sample is the previous operation's
    w.record(start=utc(2026, 12, 24, 10, 10))
    return w


@pytest.mark.parametrize("frozen", [False, True])
def test_virtual_clock_creation_stop_and_sampled_delete_are_exact(tmp_path: Path, frozen: bool) -> None:
    w = _virtual_month(tmp_path, frozen=frozen)
    result = fold(tmp_path, "s", vast_clock="frozen" if frozen else "running")
    by_id = {tl.instance_id: tl for tl in result.timelines}
    truth_b = w.truth[2]
    assert by_id[2].segments[0].start == truth_b[0][0]
    assert by_id[2].segments[-1].end == truth_b[-1][0]
    a_running, _a_stopped = by_id[1].segments
    assert a_running.end == w.truth[1][1][0]


@pytest.mark.parametrize("frozen", [False, True])
def test_a_pure_delete_after_a_clock_jump_is_an_estimate(tmp_path: Path, frozen: bool) -> None:
    """No instance left to carry a clock sample from that operation: the delete is dated with the previous
    operation's clock, four virtual days early, and flagged as estimated. (`pulumi up --refresh`, or a
    refresh before a destroy, gives the operation a sample.)"""
    w = _virtual_month(tmp_path, frozen=frozen)
    result = fold(tmp_path, "s", vast_clock="frozen" if frozen else "running")
    a = next(tl for tl in result.timelines if tl.instance_id == 1)
    assert a.segments[-1].end_basis == "update"
    assert a.segments[-1].end is not None
    assert w.truth[1][-1][0] - a.segments[-1].end > timedelta(days=3)


def test_running_clock_model_misdates_deletes_on_a_frozen_clock(tmp_path: Path) -> None:
    """The clock model matters: on a frozen emulator clock, mapping by offset adds the operation's wall time."""
    w = _virtual_month(tmp_path, frozen=True)
    b = next(tl for tl in fold(tmp_path, "s", vast_clock="running").timelines if tl.instance_id == 2)
    assert b.segments[-1].end == w.truth[2][-1][0] + timedelta(seconds=20)


def _entry(seq: int, resources: tuple[InstanceResource, ...], *, start_day: int) -> HistoryEntry:
    start = utc(2026, 11, start_day)
    return HistoryEntry(project="p", stack="s", sequence=seq,
                        record=UpdateRecord.model_validate({"kind": "update", "startTime": start.timestamp(),
                                                            "endTime": start.timestamp() + 10, "result": "succeeded"}),
                        snapshot=Snapshot(written_at=start + timedelta(seconds=10), team="t", instances=resources))


def test_secret_or_missing_prices_are_unknown_not_zero() -> None:
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:x"}
    res = parse_instance({
        "urn": "urn:pulumi:s::p::pulumi-python:dynamic/vastai:Instance::a", "id": "5",
        "outputs": {"instance_id": 5, "state": "running", "dph_total": secret,
                    "start_date": utc(2026, 11, 1).timestamp()},
    })
    (tl,) = fold_stack("p", "s", [_entry(1, (res,), start_day=1)]).timelines
    assert res.outputs.dph_total is None
    assert tl.segments[0].hourly is None


def test_pending_delete_copy_is_still_rented_and_interrupted_creates_are_flagged() -> None:
    old = InstanceResource.model_validate({
        "urn": "urn:pulumi:s::p::pulumi-python:dynamic/vastai:Instance::a", "id": "5", "delete": True,
        "outputs": {"instance_id": 5, "state": "running", "dph_total": 1.0, "start_date": utc(2026, 11, 1).timestamp()},
    })
    new = old.model_copy(update={"pending_delete": False, "id": "6",
                                 "outputs": old.outputs.model_copy(update={"instance_id": 6})})
    entry = _entry(1, (old, new), start_day=1)
    entry = entry.model_copy(update={"snapshot": entry.snapshot.model_copy(update={"pending_creates": 1})
                                     if entry.snapshot else None})
    result = fold_stack("p", "s", [entry])
    assert old.pending_delete
    assert sorted(tl.instance_id or 0 for tl in result.timelines) == [5, 6]
    assert result.events[0].unknown_creates == 1


def test_missing_checkpoint_keeps_the_previous_state() -> None:
    res = InstanceResource.model_validate({
        "urn": "urn:pulumi:s::p::pulumi-python:dynamic/vastai:Instance::a", "id": "5",
        "outputs": {"instance_id": 5, "state": "running", "dph_total": 1.0, "start_date": utc(2026, 11, 1).timestamp()},
    })
    first = _entry(1, (res,), start_day=1)
    gap = _entry(2, (), start_day=2).model_copy(update={"snapshot": None})
    result = fold_stack("p", "s", [first, gap])
    assert result.events[1].checkpoint_missing
    assert result.timelines[0].segments[-1].end is None  # not deleted by a missing file


def test_provisioning_is_billed_as_storage_until_the_recorded_state(tmp_path: Path) -> None:
    res = InstanceResource.model_validate({
        "urn": "urn:pulumi:s::p::pulumi-python:dynamic/vastai:Instance::a", "id": "5",
        "outputs": {"instance_id": 5, "state": "running", "dph_total": 1.0, "storage_cost": 0.2, "disk_gb": 36,
                    "vast_created_at": utc(2026, 11, 1, 0).timestamp(),
                    "vast_state_since": utc(2026, 11, 1, 0, 12).timestamp()},
    })
    (tl,) = fold_stack("p", "s", [_entry(1, (res,), start_day=1)]).timelines
    pull, run = tl.segments
    assert (pull.component, pull.hourly, pull.end) == ("storage", Decimal("0.01"), utc(2026, 11, 1, 0, 12))
    assert (run.component, run.hourly, run.end) == ("running", Decimal("1.0"), None)


def test_team_comes_from_the_instance_then_the_stack() -> None:
    props = InstanceRecord(instance_id=1, state="running", dph_total=1.0, start_date=utc(2026, 11, 1).timestamp())
    res = InstanceResource(urn="urn:pulumi:s::p::pulumi-python:dynamic/vastai:Instance::a", id="1", outputs=props)
    result = fold_stack("p", "s", [_entry(1, (res,), start_day=1)])
    assert result.team == "t" and result.timelines[0].team == "t"
    with_team = res.model_copy(update={"outputs": props.model_copy(update={"team": "other"})})
    assert fold_stack("p", "s", [_entry(1, (with_team,), start_day=1)]).timelines[0].team == "other"
