"""The interruptible-instance rules, called directly: GPUs and groups that must be interruptible, the bid cap,
the on-demand share of the fleet's GPUs, unknowns at preview, exceptions, and budgets estimating an
interruptible instance at its bid."""

from __future__ import annotations

from typing import Any

from fleet.costs import CostBasis, estimate_instance
from fleet.instance import INSTANCE_TYPE, InstanceInputs
from policies import rules
from policies.instances import InstanceView
from policies.names import RuleName
from policies.report import pattern
from tests.policies.fakes import (
    UNKNOWN_NUMBER,
    UNKNOWN_STRING,
    block,
    collect,
    inputs,
    messages,
    quote,
    resource_args,
    stack_args,
)

ACTIVE = {"reason": "latency-bound inference", "approver": "platform-lead", "expires": "2026-06-30"}
TEAM = "ml-engineering"


def bid(**overrides: Any) -> dict[str, Any]:
    """An interruptible instance's inputs: bids 0.2 $/h, quoted at the bid plus storage."""
    return inputs(**{"interruptible": True, "max_bid": 0.2, "quote": {**quote(dph_total=0.205), "bid": 0.2},
                     **overrides})


def on_resource(rule: RuleName, props: dict[str, Any], *, name: str = "train-0", **config: Any) -> list[str]:
    args = resource_args(props, block(TEAM, rule, **config), name=name)
    return messages(collect(rules.RULES_BY_NAME[rule].validate, args))


def on_stack(rule: RuleName, instances: dict[str, dict[str, Any]], **config: Any) -> list[str]:
    args = stack_args(instances, block(TEAM, rule, **config), stack=TEAM)
    return messages(collect(rules.RULES_BY_NAME[rule].validate, args))


def test_a_gpu_that_must_be_interruptible_is_denied_on_demand_naming_the_rule_and_the_fix() -> None:
    rule = RuleName.INTERRUPTIBLE_REQUIRED
    assert on_resource(rule, inputs(), gpus=["RTX_4090"]) == [
        "ml-engineering: train-0: GPU RTX 4090 must be rented interruptible by the team's policy (GPUs "
        "[RTX 4090]); set interruptible: true and a max_bid within the team's bid cap in group train of "
        "stacks/Pulumi.ml-engineering.yaml, or request an exception"]
    assert on_resource(rule, bid(), gpus=["RTX_4090"]) == []
    assert on_resource(rule, inputs(gpu_name="H100 SXM", quote=quote("H100 SXM")), gpus=["RTX_4090"]) == []
    # A declared family that could rent a listed model must bid too, and so must the quoted model.
    family = inputs(gpu_name="A100", quote=quote("A100 PCIE"))
    assert pattern(rule, "gpu", value="A100").search(on_resource(rule, family, gpus=["A100_SXM4"])[0])
    assert pattern(rule, "gpu", value="A100").search(on_resource(rule, family, gpus=["A100 PCIE"])[0])
    assert on_resource(rule, family, gpus=["A100 PCIE"], exceptions=[{"allow": "A100", **ACTIVE}]) == []
    assert on_resource(rule, inputs(), gpus=[]) == []  # nothing required: the rule holds nothing back


def test_a_group_that_must_be_interruptible_and_its_exception() -> None:
    rule = RuleName.INTERRUPTIBLE_REQUIRED
    (message,) = on_resource(rule, inputs(), name="batch-3", groups=["batch"])
    assert pattern(rule, "group", team=TEAM, resource="batch-3", group="batch").search(message)
    assert on_resource(rule, inputs(), name="serve-0", groups=["batch"]) == []
    assert on_resource(rule, inputs(), name="batch-3", groups=["batch"],
                       exceptions=[{"allow": "batch", **ACTIVE}]) == []
    expired = {**ACTIVE, "expires": "2026-06-01"}
    assert on_resource(rule, inputs(), name="batch-3", groups=["batch"], exceptions=[{"allow": "batch", **expired}])


def test_unknown_interruptible_or_gpu_at_preview_is_the_worst_case() -> None:
    rule = RuleName.INTERRUPTIBLE_REQUIRED
    (message,) = on_resource(rule, inputs(interruptible=UNKNOWN_STRING), gpus=["RTX_4090"])
    assert pattern(rule, "unknown", team=TEAM).search(message)
    (message,) = on_resource(rule, inputs(gpu_name=UNKNOWN_STRING, quote=None), gpus=["RTX_4090"])
    assert pattern(rule, "gpu", value="unknown at preview").search(message)


def test_a_bid_over_the_cap_is_denied_and_unknown_bids_are_unbounded() -> None:
    rule = RuleName.BID_CAP
    assert on_resource(rule, bid(), max_bid=0.2) == []
    assert on_resource(rule, bid(max_bid=0.35, quote={**quote(), "bid": 0.35}), max_bid=0.2) == [
        "ml-engineering: train-0: max_bid $0.35/h exceeds the team's bid cap $0.20/h per instance; lower max_bid "
        "in stacks/Pulumi.ml-engineering.yaml or request an exception"]
    assert on_resource(rule, bid(max_bid=0.35), max_bid=0.2, exceptions=[{"allow": 0.4, **ACTIVE}]) == []
    (message,) = on_resource(rule, bid(max_bid=UNKNOWN_NUMBER), max_bid=0.2)
    assert pattern(rule, "unknown", team=TEAM, limit="$0.20").search(message)
    assert on_resource(rule, inputs(), max_bid=0.01) == []  # on demand: no bid to cap


def test_the_on_demand_share_counts_gpus_unknowns_as_on_demand() -> None:
    rule = RuleName.ON_DEMAND_GPU_SHARE
    fleet = {"serve-0": inputs(num_gpus=2), "batch-0": bid(num_gpus=2), "batch-1": bid(num_gpus=2)}
    assert on_stack(rule, fleet, max_on_demand_share=0.34) == []  # 2 of 6 GPUs on demand: 33%
    assert on_stack(rule, fleet, max_on_demand_share=0.25) == [
        "ml-engineering: stack ml-engineering rents 2 of its 6 GPUs on demand (33%; serve-0: 2), more than the "
        "team's 25%; make groups interruptible (interruptible: true with a max_bid) in "
        "stacks/Pulumi.ml-engineering.yaml, or request an exception"]
    assert on_stack(rule, fleet, max_on_demand_share=0.25, exceptions=[{"allow": 0.5, **ACTIVE}]) == []
    unknown = {**fleet, "batch-1": bid(num_gpus=2, interruptible=UNKNOWN_STRING)}
    (message,) = on_stack(rule, unknown, max_on_demand_share=0.5)
    assert pattern(rule, "over", value=4, total=6).search(message)
    assert on_stack(rule, {}, max_on_demand_share=0) == []


def test_budgets_estimate_an_interruptible_instance_at_its_bid_plus_storage() -> None:
    typed = InstanceInputs.model_validate({k: v for k, v in bid().items() if k in InstanceInputs.model_fields})
    estimate = estimate_instance(CostBasis.of(typed))
    assert estimate is not None and (estimate.basis, str(estimate.hourly)) == ("quote", "0.205")
    view = InstanceView.of(resource_type=INSTANCE_TYPE, name="batch-0",
                           urn="urn:pulumi:s::p::t::batch-0", props=bid())
    assert view is not None and view.interruptible is True and view.max_bid == 0.2
    rule = RuleName.DAILY_BUDGET
    (message,) = on_stack(rule, {f"batch-{i}": bid() for i in range(10)}, daily_budget=40)
    assert "estimated daily spend $49.20" in message  # 10 x 0.205 $/h x 24: at the bid, not on demand
