"""Renderers against golden files (regenerate with VASTGUARD_UPDATE_GOLDEN=1), JSON schema, and the SVG chart."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

import pytest

from reports.audit import audit_report
from reports.costing import chargeback_report, spend_report
from reports.fold import fold_stack
from reports.models import SCHEMA_VERSION, Actor, AuditEvent, ChargebackReport, DailySpend, Invoice, StackFold
from reports.reconcile import reconcile
from reports.render import svg
from reports.render.delimited import audit_csv, invoice_csv, reconcile_csv, spend_csv
from reports.render.document import to_json
from reports.render.markdown import invoice_markdown
from reports.render.svg import daily_spend_svg
from reports.render.table import audit_table, chargeback_table, reconcile_tables, spend_table, to_text
from reports.sources import open_source
from tests.reports.conftest import utc
from tests.reports.scenarios import MONTH, NOW, november
from vastclient.models import Charge

Golden = Callable[[str, str | bytes], None]


@pytest.fixture(scope="module")
def folds(tmp_path_factory: pytest.TempPathFactory) -> list[StackFold]:
    root = tmp_path_factory.mktemp("november")
    november(root)
    source = open_source(f"file://{root}")
    return [fold_stack(ref.project, ref.stack, source.entries(ref)) for ref in source.stacks()]


@pytest.fixture(scope="module")
def chargeback(folds: list[StackFold]) -> ChargebackReport:
    return chargeback_report([tl for f in folds for tl in f.timelines], month=MONTH, now=NOW, generated_at=NOW)


def test_audit_renderers(folds: list[StackFold], golden: Golden) -> None:
    report = audit_report(folds, generated_at=NOW)
    golden("audit.txt", to_text([audit_table(report)]))
    golden("audit.csv", audit_csv(report))
    document = json.loads(to_json(report))
    assert document["schema_version"] == SCHEMA_VERSION and document["report"] == "audit"
    assert document["events"][0]["actor"]["who"] == "Ada Lovelace (committed by CI Bot) via GitHub Actions #30"


def test_audit_filters_by_team_kind_and_time(folds: list[StackFold]) -> None:
    refreshes = audit_report(folds, generated_at=NOW, kinds=["refresh", "destroy"])
    assert [(e.stack, e.kind) for e in refreshes.events] == [("ml-research", "refresh"), ("ml-research", "destroy")]
    window = audit_report(folds, generated_at=NOW, since=utc(2026, 11, 10), until=utc(2026, 11, 11),
                          teams=["ml-engineering"])
    assert [e.message for e in window.events] == ["run eval", "park eval"]


def test_audit_merges_other_event_sources_in_time_order(folds: list[StackFold]) -> None:
    """The seam for Vast's own audit log (issue 12): any AuditEventSource's events join the trail."""
    outside = AuditEvent(project="", stack="(outside Pulumi)", team="ml-research", sequence=1, kind="vast:create",
                         started=utc(2026, 11, 3), ended=None, result="succeeded", message="instance rented by key",
                         actor=Actor(author="laptop key"))

    class VastLog:
        def audit_events(self, *, since: datetime | None, until: datetime | None) -> list[AuditEvent]:
            return [outside]

    report = audit_report(folds, generated_at=NOW, teams=["ml-research"], sources=[VastLog()])
    assert [e.kind for e in report.events][:3] == ["update", "vast:create", "update"]
    assert audit_report(folds, generated_at=NOW, sources=[VastLog()], kinds=["destroy"]).events[0].kind == "destroy"


def test_spend_renderers(folds: list[StackFold], golden: Golden) -> None:
    timelines = [tl for f in folds for tl in f.timelines]
    monthly = spend_report(timelines, start=utc(2026, 11, 1), end=utc(2026, 12, 1), now=NOW, granularity="month",
                           generated_at=NOW)
    golden("spend-month.txt", to_text([spend_table(monthly)]))
    golden("spend-month-detail.txt", to_text([spend_table(monthly, detail=True)]))
    daily = spend_report(timelines, start=utc(2026, 11, 8), end=utc(2026, 11, 13), now=NOW, granularity="day",
                         generated_at=NOW)
    golden("spend-days.txt", to_text([spend_table(daily)]))
    golden("spend-days.csv", spend_csv(daily))
    document = json.loads(to_json(monthly))
    assert document["schema_version"] == SCHEMA_VERSION
    assert Decimal(document["known"]) == monthly.known  # exact, as a string


def test_chargeback_renderers(chargeback: ChargebackReport, golden: Golden) -> None:
    golden("chargeback.txt", to_text([chargeback_table(chargeback)]))
    for invoice in chargeback.invoices:
        golden(f"invoice-{invoice.team}.md", invoice_markdown(invoice))
        golden(f"invoice-{invoice.team}.csv", invoice_csv(invoice))


def test_reconcile_renderers(folds: list[StackFold], golden: Golden) -> None:
    def charge(iid: int, amount: str, label: str) -> Charge:
        return Charge.model_validate({"type": "instance", "source": f"instance-{iid}", "amount": amount,
                                      "metadata": {"label": label}})

    report = reconcile([tl for f in folds for tl in f.timelines],
                       {"ml-research": [charge(3001, "1873.33", "ml-research/pretrain-0"),
                                        charge(3002, "265.11", "ml-research/finetune-0"),
                                        charge(3004, "480.00", "ml-research/finetune-0"),
                                        charge(3003, "84.44", "ml-research/finetune-1"),
                                        charge(9911, "52.80", "bench test")]},
                       start_day=date(2026, 11, 1), end_day=date(2026, 11, 30), now=NOW, threshold=Decimal("0.01"),
                       generated_at=NOW)
    golden("reconcile.txt", to_text(reconcile_tables(report)))
    golden("reconcile.csv", reconcile_csv(report))
    assert [r.status for r in report.rows] == ["under", "shadow"]


SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def budgeted(folds: list[StackFold]) -> ChargebackReport:
    budgets = {"ml-research": Decimal("200"), "ml-engineering": Decimal("120"), "data-science": None}
    return chargeback_report([tl for f in folds for tl in f.timelines], month=MONTH, now=NOW, generated_at=NOW,
                             budgets=budgets)


def test_daily_spend_chart_golden(budgeted: ChargebackReport, golden: Golden) -> None:
    golden("daily-spend.svg", daily_spend_svg(budgeted))


def test_daily_spend_chart_draws_each_team_against_its_budget(budgeted: ChargebackReport) -> None:
    root = ET.fromstring(daily_spend_svg(budgeted))  # noqa: S314 -- our own output
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    assert set(groups) == {"team-data-science", "team-ml-engineering", "team-ml-research"}
    texts = {gid: [t.text or "" for t in g.iter(f"{SVG}text")] for gid, g in groups.items()}
    assert "budget $200.00/day" in texts["team-ml-research"]
    assert not any(t.startswith("budget $") for t in texts["team-data-science"])  # none known: none drawn
    assert any("no daily budget known" in t for t in texts["team-data-science"])
    # ml-research spent ~$110/day in its first week: under $200, so no red bar; a $5 budget makes them red.
    red = [r for r in groups["team-ml-research"].iter(f"{SVG}rect") if r.get("fill") == svg.OVER]
    assert red == []
    tight = budgeted.model_copy(update={"invoices": tuple(
        i.model_copy(update={"daily_budget": Decimal(5)}) if i.team == "ml-research" else i
        for i in budgeted.invoices)})
    root = ET.fromstring(daily_spend_svg(tight))  # noqa: S314
    group = next(g for g in root.iter(f"{SVG}g") if g.get("id") == "team-ml-research")
    red_days = [r.findtext(f"{SVG}title") for r in group.iter(f"{SVG}rect") if r.get("fill") == svg.OVER]
    assert len(red_days) == 27 and all((t or "").startswith("ml-research 2026-11-") for t in red_days)
    heading = next(t.text for t in group.iter(f"{SVG}text"))
    assert heading is not None and "27 day(s) over budget" in heading


def test_chart_marks_days_with_an_unknown_price_and_escapes_names() -> None:
    report = ChargebackReport(
        generated_at=NOW, month=MONTH,
        invoices=(Invoice(team="r&d <gpu>", month=MONTH, lines=(), total=Decimal(0), unknown_lines=1,
                          daily_budget=Decimal(3)),),
        daily=(DailySpend(team="r&d <gpu>", day=date(2026, 11, 1), cost=Decimal("1.5"), unknown=2),
               DailySpend(team="r&d <gpu>", day=date(2026, 11, 2), cost=Decimal(0))))
    text = daily_spend_svg(report)
    root = ET.fromstring(text)  # noqa: S314 -- parses, so the team name was escaped
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "?" in labels and any("2 slice(s) with an unknown price not drawn" in (t or "") for t in labels)
    assert "r&amp;d &lt;gpu&gt;" in text
