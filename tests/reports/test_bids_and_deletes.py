"""Interruptible hours apart from on-demand ones (spend, chargeback, FOCUS's PricingCategory), outbid time at
storage only, and deletes re-dated by Vast's own record of when billing stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fleet.instance import InstanceRecord
from reports.costing import chargeback_report, spend_report
from reports.focus import focus_export
from reports.fold import component_of
from reports.models import InstanceTimeline, Segment
from reports.vast_dates import billing_ends, date_deletes
from vastclient.models import Charge

T0 = datetime(2026, 11, 3, tzinfo=UTC)
H = timedelta(hours=1)


def test_running_interruptible_and_outbid_time_are_billed_apart() -> None:
    assert component_of(InstanceRecord(state="running")) == "running"
    assert component_of(InstanceRecord(state="running", interruptible=True)) == "interruptible"
    assert component_of(InstanceRecord(state="running", interruptible=True, outbid=True)) == "storage"
    assert component_of(InstanceRecord(state="stopped", interruptible=True)) == "storage"


def _timeline(*segments: Segment, instance_id: int = 7) -> InstanceTimeline:
    return InstanceTimeline(project="vastguard", stack="ml-research", team="ml-research", name="batch-0",
                            instance_id=instance_id, gpu_name="RTX 4090", num_gpus=2, segments=segments)


BID = _timeline(
    Segment(start=T0, end=T0 + 2 * H, component="interruptible", hourly=Decimal("0.21"), start_basis="vast",
            end_basis="update"),
    Segment(start=T0 + 2 * H, end=T0 + 3 * H, component="storage", hourly=Decimal("0.01"), start_basis="update",
            end_basis="update"),
    Segment(start=T0 + 3 * H, end=None, component="interruptible", hourly=Decimal("0.21"), start_basis="update"))
ON_DEMAND = _timeline(Segment(start=T0, end=None, component="running", hourly=Decimal("0.5"), start_basis="vast"),
                      instance_id=8)


def test_spend_chargeback_and_focus_show_interruptible_hours_apart() -> None:
    now = T0 + 4 * H
    spend = spend_report([BID, ON_DEMAND], start=T0, end=T0 + 24 * H, now=now, granularity="day", generated_at=now)
    (period,) = spend.teams[0].periods
    assert (period.running_hours, period.interruptible_hours, period.storage_hours) == (
        Decimal(4), Decimal(3), Decimal(1))
    assert period.known == Decimal("0.63") + Decimal("0.01") + Decimal("2.0")  # outbid hour: storage only
    report = chargeback_report([BID, ON_DEMAND], month="2026-11", now=now, generated_at=now)
    assert {(ln.instance_id, ln.component, ln.hours) for ln in report.invoices[0].lines} == {
        (7, "interruptible", Decimal(3)), (7, "storage", Decimal(1)), (8, "running", Decimal(4))}
    rows = focus_export([BID, ON_DEMAND], month="2026-11", now=now, generated_at=now).rows
    assert {(r.ResourceId, r.x_Usage, r.PricingCategory) for r in rows} == {
        ("7", "interruptible", "Dynamic"), ("7", "storage", "Standard"), ("8", "running", "Standard")}
    assert all(r.CommitmentDiscountId is None and r.CommitmentDiscountStatus is None for r in rows)


def _charge(instance_id: int, start: datetime, end: datetime) -> Charge:
    return Charge(type="instance", amount=Decimal("1"), source=f"instance-{instance_id}", start=start.timestamp(),
                  end=end.timestamp())


def test_a_delete_dated_from_pulumi_is_re_dated_by_the_end_of_vasts_billing() -> None:
    deleted_at = T0 + 5 * H + timedelta(seconds=12.5)
    closed = _timeline(Segment(start=T0, end=T0 + 30 * H, component="running", hourly=Decimal("1.27"),
                               start_basis="vast", end_basis="update"))  # a stale clock sample put it a day late
    charges = [_charge(7, T0, deleted_at), _charge(7, T0 - 24 * H, T0), _charge(9, T0, T0 + 48 * H)]
    window_end = T0 + 24 * H
    ends = billing_ends(charges, window_end=window_end)
    assert ends == {7: deleted_at}  # instance 9 bills up to the window's end: maybe beyond, so not an end
    (redated,) = date_deletes([closed], ends)
    assert (redated.segments[-1].end, redated.segments[-1].end_basis) == (deleted_at, "vast")
    # Dated from Vast already, or still rented: left as it was.
    exact = _timeline(Segment(start=T0, end=T0 + H, component="running", hourly=Decimal(1), start_basis="vast",
                              end_basis="vast"))
    assert date_deletes([exact, ON_DEMAND], {7: deleted_at, 8: deleted_at}) == [exact, ON_DEMAND]
