"""Stack rules, called directly: counts, budgets from estimated cost, unknowns at preview, exceptions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import rules
from policies.instances import InstanceView, estimate_fleet
from policies.names import RuleName
from policies.report import dollars, pattern
from tests.policies.fakes import (
    TODAY,
    UNKNOWN_NUMBER,
    UNKNOWN_STRING,
    block,
    collect,
    contract_cost,
    inputs,
    messages,
    outputs,
    quote,
    stack_args,
)

ACTIVE = {"reason": "conference deadline", "approver": "platform-lead", "expires": "2026-06-30"}


def run(rule: RuleName, instances: dict[str, dict[str, Any]], *, team: str = "ml-engineering",
        today: date = TODAY, **config: Any) -> list[str]:
    args = stack_args(instances, block(team, rule, **config), stack=team)
    return messages(collect(rules.RULES_BY_NAME[rule].validate, args, today=today))


def fleet(n: int, **props: Any) -> dict[str, dict[str, Any]]:
    return {f"train-{i}": inputs(**props) for i in range(n)}


# -- counts ---------------------------------------------------------------------------------------------------


def test_instance_count_at_the_cap_passes_and_above_it_is_denied() -> None:
    assert run(RuleName.MAX_INSTANCES, fleet(4)) == []
    assert run(RuleName.MAX_INSTANCES, fleet(5)) == [
        "ml-engineering: stack ml-engineering declares 5 instances, more than the team's cap of 4; lower the "
        "groups' count in stacks/Pulumi.ml-engineering.yaml or request an exception"
    ]


def test_stopped_instances_count_and_an_exception_raises_the_cap() -> None:
    instances = {**fleet(4), "idle-0": inputs(state="stopped")}
    assert len(run(RuleName.MAX_INSTANCES, instances)) == 1
    assert run(RuleName.MAX_INSTANCES, instances, exceptions=[{"allow": 5, **ACTIVE}]) == []


def test_gpu_count_sums_num_gpus() -> None:
    assert run(RuleName.MAX_GPUS, fleet(4, num_gpus=2)) == []
    found = run(RuleName.MAX_GPUS, fleet(3, num_gpus=3))
    assert found == [
        "ml-engineering: stack ml-engineering declares 9 GPUs (train-0: 3, train-1: 3, train-2: 3), more than the "
        "team's cap of 8; lower count or num_gpus in stacks/Pulumi.ml-engineering.yaml or request an exception"
    ]


def test_unknown_gpu_count_is_the_most_an_instance_can_have() -> None:
    found = run(RuleName.MAX_GPUS, {"train-0": inputs(num_gpus=UNKNOWN_NUMBER)})
    assert len(found) == 1
    assert "train-0: 16 (unknown at preview, counted as 16)" in found[0]


def test_an_empty_stack_passes_every_count_and_budget() -> None:
    for rule in (RuleName.MAX_INSTANCES, RuleName.MAX_GPUS, RuleName.DAILY_BUDGET, RuleName.DAILY_BUDGET_WARNING):
        assert run(rule, {}) == [], rule


def test_other_resources_in_the_stack_are_not_counted() -> None:
    args = stack_args(fleet(4), block("ml-engineering", RuleName.MAX_INSTANCES))
    assert len(args.resources) == 5  # the pulumi:pulumi:Stack resource too
    assert collect(rules.max_instances, args) == []


# -- budgets --------------------------------------------------------------------------------------------------


def test_daily_budget_uses_quotes_for_new_instances() -> None:
    assert run(RuleName.DAILY_BUDGET, fleet(4, quote=quote(dph_total=0.5))) == []  # $48/day
    found = run(RuleName.DAILY_BUDGET, fleet(2, max_dph=1.5, quote=quote("A100 PCIE", dph_total=1.1)))
    assert found == [
        "ml-engineering: estimated daily spend $52.80 (2 instances at $2.20/h: 2 quoted) exceeds the daily budget "
        "$50.00; lower count or max_dph in stacks/Pulumi.ml-engineering.yaml, stop instances, or request a budget "
        "exception"
    ]


def test_daily_budget_uses_the_actual_price_of_existing_instances() -> None:
    """An instance Vast already rents costs its actual dph_total, whatever today's quote says."""
    existing = {f"train-{i}": outputs(dph_total=0.9, quote=quote(dph_total=0.3)) for i in range(3)}
    found = run(RuleName.DAILY_BUDGET, existing)
    assert pattern(RuleName.DAILY_BUDGET, "over", value="$64.80").search(found[0])
    assert "3 actual $/h" in found[0]


def test_stopped_instances_cost_their_storage_only() -> None:
    stopped = {f"idle-{i}": outputs(dph_total=5.0, state="stopped", disk_gb=72) for i in range(4)}
    assert run(RuleName.DAILY_BUDGET, stopped) == []  # 4 x 0.10 $/GB/month x 72 GB / 720 h x 24 = $0.96/day
    assert run(RuleName.DAILY_BUDGET, stopped, daily_budget=0.95) != []


def test_an_instance_without_a_quote_is_costed_at_its_max_dph() -> None:
    found = run(RuleName.DAILY_BUDGET, fleet(2, max_dph=1.5, quote=None))
    assert pattern(RuleName.DAILY_BUDGET, "over", value="$72.00").search(found[0])
    assert "2 at their max_dph cap" in found[0]


def test_an_unknown_quote_price_falls_back_to_max_dph() -> None:
    found = run(RuleName.DAILY_BUDGET, fleet(2, max_dph=1.5, quote={**quote(), "dph_total": UNKNOWN_NUMBER}))
    assert pattern(RuleName.DAILY_BUDGET, "over", value="$72.00").search(found[0])


def test_an_unknown_state_is_costed_as_running() -> None:
    instances = {"idle-0": outputs(dph_total=2.5, state=UNKNOWN_STRING)}
    assert pattern(RuleName.DAILY_BUDGET, "over", value="$60.00").search(run(RuleName.DAILY_BUDGET, instances)[0])


def test_a_stopped_instance_whose_storage_price_is_unknown_is_costed_as_running() -> None:
    instances = {"idle-0": outputs(dph_total=2.5, state="stopped", storage_cost=UNKNOWN_NUMBER)}
    assert len(run(RuleName.DAILY_BUDGET, instances)) == 1


def test_an_instance_that_cannot_be_bounded_is_denied_by_name() -> None:
    args = stack_args({"train-0": inputs(max_dph=UNKNOWN_NUMBER, quote=None)},
                      block("ml-engineering", RuleName.DAILY_BUDGET))
    found = collect(rules.daily_budget, args)
    assert len(found) == 1
    assert found[0].urn is not None and found[0].urn.endswith("::train-0")
    assert pattern(RuleName.DAILY_BUDGET, "unbounded", resource="train-0").search(found[0].message)


def test_daily_budget_exception_raises_the_budget_while_active() -> None:
    instances = fleet(2, max_dph=1.5, quote=quote(dph_total=1.1))
    assert run(RuleName.DAILY_BUDGET, instances, exceptions=[{"allow": 60, **ACTIVE}]) == []
    assert len(run(RuleName.DAILY_BUDGET, instances, exceptions=[{"allow": 60, **ACTIVE}],
                   today=date(2026, 7, 1))) == 1


def test_budget_warning_from_80_percent_is_separate_from_the_budget() -> None:
    assert run(RuleName.DAILY_BUDGET_WARNING, fleet(1, quote=quote(dph_total=1.6))) == []  # $38.40 = 77%
    found = run(RuleName.DAILY_BUDGET_WARNING, fleet(1, quote=quote(dph_total=1.7)))  # $40.80 = 82%
    assert found == [
        "ml-engineering: estimated daily spend $40.80 (1 instance at $1.70/h: 1 quoted) is 82% of the daily budget "
        "$50.00, at or above the 80% warning level; stop idle instances or plan a budget request"
    ]
    assert run(RuleName.DAILY_BUDGET, fleet(1, quote=quote(dph_total=1.7))) == []


def test_budget_warning_share_is_configurable() -> None:
    instances = fleet(1, quote=quote(dph_total=1.1))  # $26.40 = 53%
    assert run(RuleName.DAILY_BUDGET_WARNING, instances) == []
    assert run(RuleName.DAILY_BUDGET_WARNING, instances, warn_share=0.5) != []


def test_monthly_budget_applies_only_when_set() -> None:
    instances = fleet(1, quote=quote(dph_total=0.8))  # $584/month
    assert run(RuleName.MONTHLY_BUDGET, instances) == []
    found = run(RuleName.MONTHLY_BUDGET, instances, monthly_budget=500)
    assert pattern(RuleName.MONTHLY_BUDGET, "over", value="$584.00", limit="$500.00").search(found[0])


def test_hourly_burn_applies_only_when_set() -> None:
    instances = fleet(2, quote=quote(dph_total=0.6))
    assert run(RuleName.MAX_HOURLY_BURN, instances) == []
    found = run(RuleName.MAX_HOURLY_BURN, instances, max_hourly_burn=1.0)
    assert pattern(RuleName.MAX_HOURLY_BURN, "over", value="$1.20", limit="$1.00").search(found[0])
    assert len(run(RuleName.MAX_HOURLY_BURN, fleet(1, max_dph=UNKNOWN_NUMBER, quote=None), max_hourly_burn=1.0)) == 1


# -- the pack's estimate is fleet.costs' estimate ----------------------------------------------------------------


def views(instances: dict[str, dict[str, Any]]) -> list[InstanceView]:
    args = stack_args(instances, {})
    out = [InstanceView.of(resource_type=r.resource_type, name=r.name, urn=r.urn, props=r.props)
           for r in args.resources]
    return [v for v in out if v is not None]


def test_pack_daily_estimate_equals_fleet_costs_for_a_mixed_stack() -> None:
    instances = {
        "new-0": inputs(quote=quote(dph_total=0.37)),
        "new-stopped": inputs(state="stopped", disk_gb=64, quote=quote(dph_total=0.41, storage_cost=0.15)),
        "capped": inputs(max_dph=0.45, quote=None),
        "old-0": outputs(dph_total=0.52),
        "old-stopped": outputs(dph_total=0.52, state="stopped", disk_gb=100),
    }
    expected = contract_cost(instances.values())
    assert estimate_fleet(views(instances)).cost == expected
    found = run(RuleName.DAILY_BUDGET, instances, daily_budget=0)
    assert pattern(RuleName.DAILY_BUDGET, "over", value=dollars(expected.daily)).search(found[0])
    # by hand: 0.37 + 0.15 x 64 / 720 + 0.45 + 0.52 + 0.10 x 100 / 720 = 1.36722.. $/h
    assert dollars(expected.daily) == "$32.81"
    assert expected.hourly == Decimal("1.34") + (Decimal("9.6") + Decimal("10")) / 720


instance_props = st.fixed_dictionaries({
    "max_dph": st.decimals(min_value="0.05", max_value="8", places=2).map(float),
    "state": st.sampled_from(["running", "stopped"]),
    "disk_gb": st.integers(min_value=8, max_value=500),
    "quote": st.one_of(st.none(), st.builds(quote, dph_total=st.decimals("0.01", "8", places=3).map(float),
                                            storage_cost=st.decimals("0", "0.5", places=3).map(float))),
    "existing": st.one_of(st.none(), st.decimals("0.01", "8", places=3).map(float)),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(instance_props, max_size=6))
def test_pack_estimate_equals_fleet_costs_for_any_known_stack(specs: list[dict[str, Any]]) -> None:
    instances: dict[str, dict[str, Any]] = {}
    for i, spec in enumerate(specs):
        existing = spec.pop("existing")
        instances[f"i-{i}"] = outputs(dph_total=existing, **spec) if existing is not None else inputs(**spec)
    assert estimate_fleet(views(instances)).cost == contract_cost(instances.values())


@pytest.mark.parametrize("rule", [r.name for r in rules.RULES if r.stack is not None])
def test_every_stack_rule_denies_without_a_team_file(rule: RuleName) -> None:
    found = messages(collect(rules.RULES_BY_NAME[rule].validate, stack_args({}, block(None, rule), stack="x-team")))
    assert found == [
        f"stack x-team: no team policy config for {rule}; create policies/teams/x-team.json with "
        "`vastguard team add x-team` and preview with --policy-pack-config policies/teams/x-team.json"
    ]
