"""`vastguard chargeback --format focus`: the month's rows against FOCUS 1.4's own column list (tests/focus_spec.py),
and BilledCost summing to what Vast billed, to the cent, on the scripted virtual month."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from fleet.costs import cents
from reports.costing import chargeback_report, month_range
from reports.focus import FOCUS_VERSION, focus_export
from reports.models import InstanceTimeline, Segment
from reports.render.focus import focus_csv
from tests import focus_spec
from tests.reports.conftest import utc
from tests.reports.scenarios import MONTH, NOW, november
from tests.reports.synthetic import billed
from tests.reports.test_scripted_month import timelines, virtual_month

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?(E-?\d+)?$")


def check_against_spec(text: str) -> list[dict[str, str]]:
    """Every FOCUS rule we can check on a file: header, order, types, nulls, allowed values."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    rows = [dict(zip(header, values, strict=True)) for values in reader]
    missing = [c for c in focus_spec.MANDATORY if c not in header]
    assert missing == [], f"mandatory FOCUS {focus_spec.FOCUS_VERSION} columns missing: {missing}"
    custom = [c for c in header if c.startswith("x_")]
    assert header[-len(custom):] == custom, "custom columns must come after every FOCUS column"
    unknown = [c for c in header if not c.startswith("x_") and c not in focus_spec.ALL_COLUMNS]
    assert unknown == [], f"not FOCUS columns and not x_-prefixed: {unknown}"
    assert all(re.fullmatch(r"x_[A-Z][A-Za-z0-9]*", c) for c in custom), custom
    specified = {**focus_spec.MANDATORY, **focus_spec.OPTIONAL}
    for number, row in enumerate(rows, start=2):
        for name, column in specified.items():
            if name not in row:
                continue
            value = row[name]
            where = f"line {number}, {name}={value!r}"
            if value == "":
                assert column.allows_nulls, f"{where}: null not allowed"
                continue
            if column.data_type == "Decimal":
                assert NUMBER.fullmatch(value), f"{where}: not a FOCUS number"
                Decimal(value)
            elif column.data_type == "Date/Time":
                assert DATETIME.fullmatch(value), f"{where}: not YYYY-MM-DDTHH:mm:ssZ"
            if column.allowed:
                assert value in column.allowed, f"{where}: not one of the allowed values"
    return rows


@pytest.fixture(scope="module")
def november_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[InstanceTimeline], str]:
    root = tmp_path_factory.mktemp("november-focus")
    november(root)
    tls = timelines(root)
    return tls, focus_csv(focus_export(tls, month=MONTH, now=NOW, generated_at=NOW))


def test_the_export_has_focus_required_columns_and_types(november_rows: tuple[list[InstanceTimeline], str]) -> None:
    assert FOCUS_VERSION == focus_spec.FOCUS_VERSION
    rows = check_against_spec(november_rows[1])
    assert rows
    for row in rows:
        start, end = (datetime.fromisoformat(row[c].replace("Z", "+00:00"))
                      for c in ("ChargePeriodStart", "ChargePeriodEnd"))
        assert end - start == timedelta(days=1) and start.hour == 0  # a row per UTC day
        assert (row["BillingPeriodStart"], row["BillingPeriodEnd"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
        assert row["BilledCost"] == row["EffectiveCost"] == row["ListCost"] == row["ContractedCost"]
        assert Decimal(row["BilledCost"]) == pytest.approx(Decimal(row["PricingQuantity"])
                                                           * Decimal(row["ListUnitPrice"]), abs=Decimal("1e-9"))
        assert row["BillingAccountId"] == row["x_Team"] and row["SubAccountName"] == row["x_Stack"]
        assert row["ServiceCategory"] == ("Compute" if row["x_Usage"] == "running" else "Storage")


def test_the_checker_fails_a_file_that_breaks_the_spec(november_rows: tuple[list[InstanceTimeline], str]) -> None:
    good = november_rows[1]
    header, *lines = good.splitlines()
    with pytest.raises(AssertionError, match=r"mandatory FOCUS 1\.4 columns missing"):
        check_against_spec("\n".join([header.replace("HostProviderName", "HostProvider"), *lines]) + "\n")
    with pytest.raises(AssertionError, match="not YYYY-MM-DDTHH:mm:ssZ"):
        check_against_spec(good.replace("2026-11-02T00:00:00Z", "2026-11-02 00:00:00", 1))
    columns = header.split(",")
    moved = ",".join([columns[-1], *columns[:-1]])
    with pytest.raises(AssertionError, match="custom columns must come after"):
        check_against_spec(moved + "\n")
    with pytest.raises(AssertionError, match="not one of the allowed values"):
        check_against_spec(good.replace(",Usage,", ",usage,", 1))


def test_billed_cost_equals_the_invoices_and_a_months_billing_to_the_cent(tmp_path: Path) -> None:
    w = virtual_month(tmp_path, frozen=True)
    start, end = month_range(MONTH)
    now = start + timedelta(days=40)
    truth = billed(w.truth, start=start, end=end)
    tls = timelines(tmp_path, "frozen")
    rows = check_against_spec(focus_csv(focus_export(tls, month=MONTH, now=now, generated_at=now)))
    total = sum((Decimal(r["BilledCost"]) for r in rows), Decimal(0))
    assert cents(total) == cents(sum(truth.values(), Decimal(0)))
    per_instance: dict[int, Decimal] = {}
    for r in rows:
        iid = int(r["ResourceId"])
        per_instance[iid] = per_instance.get(iid, Decimal(0)) + Decimal(r["BilledCost"])
    assert {k: cents(v) for k, v in per_instance.items()} == {k: cents(v) for k, v in truth.items() if v}
    (invoice,) = chargeback_report(tls, month=MONTH, now=now, generated_at=now).invoices
    assert abs(total - invoice.total) < Decimal("1e-8")  # the same money, cut by day instead of by month


def test_an_unknown_price_is_counted_not_written_as_zero() -> None:
    known = Segment(start=utc(2026, 11, 3), end=utc(2026, 11, 3, 12), component="running",
                    hourly=Decimal("0.5"), start_basis="vast", end_basis="vast")
    unknown = known.model_copy(update={"start": utc(2026, 11, 4), "end": utc(2026, 11, 5, 6), "hourly": None})
    tl = InstanceTimeline(project="vastguard", stack="ml-research", team="ml-research", name="a-0", instance_id=7,
                          gpu_name="H100 SXM", num_gpus=1, segments=(known, unknown))
    export = focus_export([tl], month=MONTH, now=NOW, generated_at=NOW)
    assert [(r.ChargePeriodStart.day, r.BilledCost) for r in export.rows] == [(3, Decimal("6"))]
    assert export.unknown_price_slices == 2  # the 4th and the 5th
