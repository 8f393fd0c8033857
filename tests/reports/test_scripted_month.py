"""A scripted month against a virtual Vast clock: spend and chargeback must equal what Vast bills, to the cent,
reconcile must find nothing, and an instance rented outside Pulumi must show up as shadow spend.

The writer plays the provider (recording Vast-clock times per the proposed contract) and keeps the ground
truth of billing independently of the reports' code; the engine-driven version against the emulator, with the
real provider writing the contract fields, is tests/e2e/test_scripted_month.py."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from fleet.costs import cents
from reports.costing import chargeback_report, month_range, spend_report
from reports.fold import VastClock, fold_stack
from reports.models import InstanceTimeline
from reports.reconcile import reconcile
from reports.sources import open_source
from tests.reports.conftest import utc
from tests.reports.scenarios import MONTH, NOW, november
from tests.reports.synthetic import Rented, StackWriter, billed
from vastclient.models import Charge

START, END = month_range(MONTH)


def timelines(root: Path, vast_clock: VastClock = "running") -> list[InstanceTimeline]:
    source = open_source(f"file://{root}")
    return [tl for ref in source.stacks()
            for tl in fold_stack(ref.project, ref.stack, source.entries(ref), vast_clock=vast_clock).timelines]


def charges_for(truth: dict[int, Decimal], *, label: str = "") -> list[Charge]:
    """Vast's charges endpoint shape: one row per instance, amount in cents."""
    return [Charge.model_validate({"type": "instance", "source": f"instance-{iid}", "amount": str(cents(amount)),
                                   "start": START.timestamp(), "end": END.timestamp(),
                                   "metadata": {"label": label or f"instance {iid}"}})
            for iid, amount in truth.items() if amount > 0]


def virtual_month(root: Path, *, frozen: bool) -> StackWriter:
    """Every operation runs on one wall-clock afternoon; between them a test advances the Vast clock days.
    Each `up` runs with --refresh, so every operation carries a clock sample."""
    w = StackWriter(root, "ml-research", "ml-research")
    wall = utc(2026, 12, 24, 14)

    def step(days: float, *, kind: str = "update", refresh: bool = True) -> None:
        nonlocal wall
        vast = START + timedelta(days=days)
        if frozen:
            w.frozen_at = vast
        else:
            w.skew = vast - wall
        w.record(start=wall, kind=kind, refresh=refresh)
        wall += timedelta(minutes=2)

    w.rent(Rented("train-0", 501, "H100 SXM", 2.875, disk_gb=200))
    w.rent(Rented("train-1", 502, "A100 SXM4", 1.1875, disk_gb=100))
    step(0.25)
    w.rent(Rented("dev-0", 503, "RTX 4090", 0.35, disk_gb=40))
    step(2.5)
    w.set_state("train-1", "stopped")
    step(6)
    w.remove("train-0")  # replaced by a bigger box
    w.rent(Rented("train-0", 504, "H100 SXM", 3.4, num_gpus=2, disk_gb=400))
    step(9.75)
    w.set_state("train-1", "running")
    step(15)
    w.remove("dev-0")
    step(21.5)
    step(25, kind="refresh")
    for name in list(w.instances):
        if name != "train-1":
            w.remove(name)
    step(28)
    return w


@pytest.mark.parametrize("frozen", [False, True], ids=["running-clock", "frozen-clock"])
def test_spend_and_chargeback_equal_vast_billing_to_the_cent(tmp_path: Path, frozen: bool) -> None:
    w = virtual_month(tmp_path, frozen=frozen)
    now = START + timedelta(days=40)
    truth = billed(w.truth, start=START, end=END)
    tls = timelines(tmp_path, "frozen" if frozen else "running")

    report = spend_report(tls, start=START, end=END, now=now, granularity="day", generated_at=now)
    per_instance: dict[int, Decimal] = {}
    for team in report.teams:
        for period in team.periods:
            for inst in period.instances:
                assert inst.instance_id is not None and inst.cost is not None
                per_instance[inst.instance_id] = per_instance.get(inst.instance_id, Decimal(0)) + inst.cost
    assert {iid: cents(v) for iid, v in per_instance.items()} == {iid: cents(v) for iid, v in truth.items()}
    assert cents(report.known) == cents(sum(truth.values(), Decimal(0)))
    assert report.estimated_times > 0  # deletes are dated from samples, and the report says so

    (invoice,) = chargeback_report(tls, month=MONTH, now=now, generated_at=now).invoices
    assert cents(invoice.total) == cents(sum(truth.values(), Decimal(0)))
    hourly = {(ln.instance_id, ln.component): ln.hourly for ln in invoice.lines}
    assert hourly[(504, "running")] == Decimal("3.4")
    assert hourly[(502, "storage")] == Decimal("0.15") * 100 / 720

    clean = reconcile(tls, {"ml-research": charges_for(truth)}, start_day=date(2026, 11, 1),
                      end_day=date(2026, 11, 30), now=now, threshold=Decimal("0.01"), generated_at=now)
    assert clean.rows == ()
    (team_total,) = clean.teams
    assert team_total.shadow == 0 and abs(team_total.billed - team_total.reconstructed) < Decimal("0.01")


def test_an_instance_rented_outside_pulumi_is_shadow_spend(tmp_path: Path) -> None:
    w = virtual_month(tmp_path, frozen=False)
    now = START + timedelta(days=40)
    truth = billed(w.truth, start=START, end=END)
    bills = charges_for(truth) + charges_for({777: Decimal("41.30")}, label="quick test, do not bill")
    report = reconcile(timelines(tmp_path), {"ml-research": bills}, start_day=date(2026, 11, 1),
                       end_day=date(2026, 11, 30), now=now, threshold=Decimal("0.01"), generated_at=now)
    (row,) = report.rows
    assert (row.instance_id, row.status, row.billed, row.stack) == (777, "shadow", Decimal("41.30"), None)
    assert row.label == "quick test, do not bill"
    assert report.teams[0].shadow == Decimal("41.30")


def test_november_of_three_teams_matches_its_ground_truth(tmp_path: Path) -> None:
    """Wall clock == Vast clock (real Vast): deletes are dated by the checkpoint write, exactly."""
    writers = november(tmp_path)
    truth = {iid: amount for w in writers.values() for iid, amount in billed(w.truth, start=START, end=END).items()}
    tls = timelines(tmp_path)
    report = chargeback_report(tls, month=MONTH, now=NOW, generated_at=NOW)
    lines: dict[int, Decimal] = {}
    for inv in report.invoices:
        for ln in inv.lines:
            assert ln.instance_id is not None and ln.cost is not None
            lines[ln.instance_id] = lines.get(ln.instance_id, Decimal(0)) + ln.cost
    assert {k: cents(v) for k, v in lines.items()} == {k: cents(v) for k, v in truth.items() if v}
    assert sum((i.total for i in report.invoices), Decimal(0)) == sum(lines.values(), Decimal(0))
