"""Budgets on actual spend (policies/spend.py and the budget rules), called directly: spent so far in the window
plus the stack's estimate to its end, what runs outside the stack, unknown spend failing closed, the team's time
zone, and the guard's pause."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fleet.spend import LiveInstance
from policies import rules
from policies.names import RuleName
from policies.report import pattern
from tests.policies.fakes import block, collect, inputs, messages, outputs, quote, spend, stack_args
from tests.policies.harness import AnalyzerProcess, Resource, team_file

TEAM = "ml-engineering"
EVENING = datetime(2026, 6, 15, 18, tzinfo=UTC)


def run(rule: RuleName, instances: dict[str, dict[str, Any]], reading: dict[str, Any] | None,
        **config: Any) -> list[str]:
    args = stack_args(instances, block(TEAM, rule, **config), stack=TEAM, reading=reading)
    return messages(collect(rules.RULES_BY_NAME[rule].validate, args))


def fleet(n: int, dph: float = 1.0) -> dict[str, dict[str, Any]]:
    return {f"train-{i}": inputs(max_dph=1.5, quote=quote(dph_total=dph)) for i in range(n)}


def test_the_daily_budget_judges_what_was_spent_today_plus_the_estimate_to_midnight() -> None:
    at_six = spend(TEAM, at=EVENING, spent={"day": "41.20"})
    found = run(RuleName.DAILY_BUDGET, fleet(2, dph=1.01), at_six)  # 2 x $1.01/h x 6 h = $12.12
    assert found == [
        "ml-engineering: spent $41.20 today + $12.12 projected to 24:00 UTC (2 instances at $2.02/h: 2 quoted) = "
        "$53.32 exceeds the daily budget $50.00; lower count or max_dph in stacks/Pulumi.ml-engineering.yaml, stop "
        "instances, or request a budget exception"]
    # The same fleet in the morning of a day with little spent: within budget, though x 24 it would not be.
    morning = spend(TEAM, at=datetime(2026, 6, 15, 12, tzinfo=UTC), spent={"day": "2"})
    assert run(RuleName.DAILY_BUDGET, fleet(2, dph=1.5), morning) == []  # $2 + $3/h x 12 h = $38
    assert run(RuleName.DAILY_BUDGET, fleet(2, dph=1.5), None)  # no reading: the estimate over a whole day, $72


def test_instances_running_outside_the_stack_burn_on_in_the_projection() -> None:
    shadow = LiveInstance(instance_id=99, status="running", dph_total=Decimal("2.5"), stack=None)
    reading = spend(TEAM, at=EVENING, spent={"day": "30"}, instances=(shadow,))
    (found,) = run(RuleName.DAILY_BUDGET, fleet(1, dph=1.0), reading)  # $30 + ($1 + $2.50) x 6 h = $51
    assert pattern(RuleName.DAILY_BUDGET, "over-actual", value="$51.00").search(found)
    assert "1 instance running outside the stack at $2.50/h" in found
    warning = run(RuleName.DAILY_BUDGET_WARNING, fleet(1, dph=1.0), spend(TEAM, at=EVENING, spent={"day": "36"}))
    assert pattern(RuleName.DAILY_BUDGET_WARNING, "near-actual", value="$42.00", share="84").search(warning[0])


def test_the_monthly_budget_needs_the_month_window_read() -> None:
    config = {"monthly_budget": 500}
    reading = spend(TEAM, at=EVENING, spent={"day": "10", "month": "420"})
    (found,) = run(RuleName.MONTHLY_BUDGET, fleet(1, dph=0.5), reading, **config)
    assert pattern(RuleName.MONTHLY_BUDGET, "over-actual", spent="$420.00", end="the end of 2026-06 (UTC)").search(
        found)  # 15 days and 6 hours left at $0.50/h: $183
    day_only = spend(TEAM, at=EVENING, kinds=("day",))
    unread = run(RuleName.MONTHLY_BUDGET, fleet(1, dph=0.5), day_only, **config)
    assert any(pattern(RuleName.MONTHLY_BUDGET, "unread").search(m) for m in unread)


def test_unknown_missing_or_misread_spend_fails_closed_naming_the_fix() -> None:
    rule = RuleName.ACTUAL_SPEND
    assert run(rule, fleet(1), spend(TEAM)) == []
    (missing,) = run(rule, fleet(1), None)
    assert pattern(rule, "missing", team=TEAM).search(missing)
    (unknown,) = run(rule, fleet(1), spend(TEAM, status="unknown", reason="the key lacks billing_read"))
    assert "the team's actual spend is unknown (the key lacks billing_read)" in unknown
    assert "never counted as $0" in unknown
    (zone,) = run(rule, fleet(1), spend(TEAM), timezone="Europe/Berlin")
    assert pattern(rule, "timezone", value="UTC", limit="Europe/Berlin").search(zone)
    (other,) = run(rule, fleet(1), spend("data-science", stack=TEAM))
    assert pattern(rule, "team-mismatch", value="data-science").search(other)


def test_a_pause_denies_starting_any_gpu_until_its_window_is_over() -> None:
    rule = RuleName.BUDGET_ENFORCEMENT
    key = "day:2026-06-15@UTC"
    stopped_by_guard = LiveInstance(instance_id=9001, status="stopped", dph_total=Decimal("0.4"), stack=TEAM,
                                    paused=key)
    still_running = LiveInstance(instance_id=9002, status="running", dph_total=Decimal("0.4"), stack=TEAM)
    reading = spend(TEAM, at=EVENING, instances=(stopped_by_guard, still_running))
    instances = {
        "kept": outputs(instance_id=9001),  # the stack still says running: an up --refresh would start it
        "busy": outputs(instance_id=9002),  # runs already: nothing starts
        "parked": outputs(instance_id=9003, state="stopped"),
        "new-0": inputs(),  # a new GPU
    }
    found = run(rule, instances, reading)
    assert len(found) == 2 and all(pattern(rule, "paused", value=key, limit="24:00 UTC").search(m) for m in found)
    assert {m.split(": ")[1] for m in found} == {"kept", "new-0"}
    tomorrow = spend(TEAM, at=datetime(2026, 6, 16, 0, 5, tzinfo=UTC), instances=(stopped_by_guard,))
    assert run(rule, instances, tomorrow) == []  # the mark is for yesterday: the pause is over


def test_a_team_file_can_make_unknown_spend_advisory() -> None:
    config = team_file(TEAM)
    config["vast-actual-spend"]["enforcementLevel"] = "advisory"
    with AnalyzerProcess(stack=TEAM) as pack:
        pack.configure(config)
        unknown = Resource(name="team-spend", stack=TEAM, props=spend(TEAM, status="unknown", reason="gateway down"),
                           type="pulumi-python:dynamic/vastai:TeamSpend")
        diags = [d for d in pack.analyze_stack([unknown]) if d.policy == "vast-actual-spend"]
    assert [d.level for d in diags] == ["advisory"] and "gateway down" in diags[0].message
