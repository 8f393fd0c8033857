"""Reconciliation statuses: match, over/under, shadow, other-team, unbilled, unknown price."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from reports.models import InstanceTimeline, Segment
from reports.reconcile import reconcile
from tests.reports.conftest import utc
from vastclient.models import Charge


def tl(iid: int, team: str, rate: str | None, *, hours: int = 10) -> InstanceTimeline:
    return InstanceTimeline(
        project="p", stack=f"{team}-stack", team=team, name=f"box-{iid}", instance_id=iid, gpu_name="RTX 4090",
        num_gpus=1, segments=(Segment(start=utc(2026, 11, 3), end=utc(2026, 11, 3, hours), component="running",
                                      hourly=None if rate is None else Decimal(rate), start_basis="vast"),),
    )


def charge(iid: int, amount: str, kind: str = "instance") -> Charge:
    return Charge.model_validate({"type": kind, "source": f"{kind}-{iid}", "amount": amount,
                                  "metadata": {"label": f"label {iid}", "template_id": None}, "items": None})


def run(timelines: list[InstanceTimeline], charges: dict[str, list[Charge]], *, include_matches: bool = False
        ) -> dict[int | None, str]:
    report = reconcile(timelines, charges, start_day=date(2026, 11, 1), end_day=date(2026, 11, 30),
                       now=utc(2026, 12, 1), threshold=Decimal("0.01"), generated_at=utc(2026, 12, 1),
                       include_matches=include_matches)
    return {r.instance_id: r.status for r in report.rows}


def test_each_status() -> None:
    timelines = [tl(1, "a", "1.00"), tl(2, "a", "1.00"), tl(3, "a", "1.00"), tl(4, "a", "1.00"), tl(5, "b", "1.00"),
                 tl(6, "a", None)]
    charges = {"a": [charge(1, "10.00"), charge(2, "10.50"), charge(3, "9.00"), charge(5, "3.00"), charge(9, "7.25"),
                     charge(6, "4.00"), charge(9, "0.75"), charge(40, "5.00", kind="volume")]}
    assert run(timelines, charges) == {2: "over", 3: "under", 5: "other-team", 9: "shadow", 6: "unknown-price",
                                       4: "unbilled"}
    assert run(timelines, charges, include_matches=True)[1] == "match"


def test_totals_and_shadow_amounts() -> None:
    report = reconcile([tl(1, "a", "1.00")], {"a": [charge(1, "10.004"), charge(9, "7.25"), charge(9, "0.75")]},
                       start_day=date(2026, 11, 1), end_day=date(2026, 11, 30), now=utc(2026, 12, 1),
                       threshold=Decimal("0.01"), generated_at=utc(2026, 12, 1))
    (team,) = report.teams
    assert (team.reconstructed, team.billed, team.shadow) == (Decimal(10), Decimal("18.004"), Decimal(8))
    (shadow,) = report.rows
    assert shadow.billed == Decimal(8) and shadow.label == "label 9"


def test_a_team_without_stacks_is_all_shadow_and_other_teams_are_not_reconciled() -> None:
    statuses = run([tl(1, "a", "1.00")], {"newcomer": [charge(77, "3.00")]})
    assert statuses == {77: "shadow"}


def test_spend_outside_the_window_is_ignored() -> None:
    early = InstanceTimeline(
        project="p", stack="s", team="a", name="old", instance_id=1, gpu_name=None, num_gpus=None,
        segments=(Segment(start=utc(2026, 10, 1), end=utc(2026, 10, 31), component="running", hourly=Decimal(1),
                          start_basis="vast"),),
    )
    assert run([early], {"a": []}) == {}
