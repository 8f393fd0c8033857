"""The rules on interruptible (bid) instances: which GPUs or groups must be interruptible, how high an instance
may bid, and how much of the fleet's GPU count may be rented on demand. Registered with the others in
`policies.rules.RULES`; their blocks are part of every team file (`policies.teamfile`).

Why these three: interruptible instances are how most Vast.ai users cut GPU cost (they bill their bid, often
half the on-demand price or less, and pause while a higher-priority rental holds the machine), and the first
thing platform teams ask is "which teams must use them, and how high may they bid?" (SkyPilot's admin-policy
example that forces spot for GPU jobs is the usual reference).

Worst cases at preview, as everywhere in the pack: an unknown `interruptible` is on demand, an unknown
`max_bid` is above any cap, an unknown GPU could be one that must be interruptible.

Each rule imports the shared loading helpers of `policies.rules` when it runs: that module imports this one to
register the rules, so importing them here at module level would be a cycle.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pulumi_policy import ReportViolation, ResourceValidationArgs, StackValidationArgs
from pydantic import Field

from fleet.costs import money
from fleet.declaration import group_of
from fleet.gpus import allowed, normalize
from policies.config import Amount, GpuName, Limited, Share, active_allows
from policies.instances import InstanceView, QuoteView, Unknown, instance_and_config, stack_and_config, utc_today
from policies.names import RuleName
from policies.report import dollars, listing, render

__all__ = [
    "BidCapConfig",
    "InterruptibleRequiredConfig",
    "OnDemandGpuShareConfig",
    "bid_cap",
    "interruptible_required",
    "on_demand_gpu_share",
]


class InterruptibleRequiredConfig(Limited[GpuName]):
    """An exception's `allow` names a GPU (model or family) or a group that may rent on demand after all."""

    gpus: list[GpuName] = Field(
        default_factory=list, description="GPU models or families (A100 = any A100) that must be rented interruptible")
    groups: list[GpuName] = Field(default_factory=list, description="fleet groups that must be interruptible")


class BidCapConfig(Limited[Amount]):
    max_bid: Amount = Field(description="$/h cap on each interruptible instance's bid (max_bid; storage is extra)")


class OnDemandGpuShareConfig(Limited[Share]):
    max_on_demand_share: Share = Field(
        default=1.0, description="largest share (0..1) of the stack's GPUs that may be rented on demand")


def interruptible_required(args: ResourceValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """A declared family must be interruptible if any GPU it could rent must be (like the allow-list's family
    check), and so must the quoted GPU: the rule follows what the instance can actually land on."""
    rule = RuleName.INTERRUPTIBLE_REQUIRED
    loaded = instance_and_config(InterruptibleRequiredConfig, rule, args, report)
    if loaded is None:
        return
    view, config = loaded
    if view.interruptible is True or not (config.gpus or config.groups):
        return
    exempt = active_allows(config.exceptions, today or utc_today())
    group = group_of(view.name) or view.name
    fields = {"team": config.team, "resource": view.name, "stack": view.stack, "group": group}
    if isinstance(view.interruptible, Unknown):
        report(render(rule, "unknown", limit=listing([*map(normalize, config.gpus), *config.groups]), **fields), None)
        return
    if group in config.groups and group not in exempt:
        report(render(rule, "group", limit=listing(config.groups), **fields), None)
        return
    gpus = [view.gpu_name]
    if isinstance(view.quote, QuoteView):
        gpus.append(view.quote.gpu_name)
    for gpu in gpus:
        if not isinstance(gpu, str):
            if gpu is not None:  # unknown at preview: could be any GPU, one that must be interruptible too
                report(render(rule, "gpu", value="unknown at preview", limit=listing(map(normalize, config.gpus)),
                              **fields), None)
                return
            continue
        if allowed(gpu, exempt) or not _must_bid(gpu, config.gpus):
            continue
        report(render(rule, "gpu", value=normalize(gpu), limit=listing(map(normalize, config.gpus)), **fields), None)
        return


def _must_bid(gpu: str, required: list[str]) -> bool:
    """`gpu` (a model, or a family as declared) could rent a GPU on the list: it is one, or a family with one in it."""
    return allowed(gpu, required) or any(normalize(entry).startswith(normalize(gpu) + " ") for entry in required)


def bid_cap(args: ResourceValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """The bid is what an interruptible instance pays while it runs (storage on top), so capping it caps the
    instance's price; the quote's bid is the same number (the provider bids max_bid)."""
    rule = RuleName.BID_CAP
    loaded = instance_and_config(BidCapConfig, rule, args, report)
    if loaded is None:
        return
    view, config = loaded
    if view.interruptible is False:
        return
    cap = max(money(v) for v in [config.max_bid, *active_allows(config.exceptions, today or utc_today())])
    fields = {"team": config.team, "resource": view.name, "stack": view.stack, "limit": dollars(cap)}
    bids = [view.max_bid]
    if isinstance(view.quote, QuoteView) and view.quote.bid is not None:
        bids.append(view.quote.bid)
    for bid in bids:
        if isinstance(bid, float):
            if money(bid) > cap:
                report(render(rule, "over", value=dollars(bid), **fields), None)
                return
        elif view.interruptible is True or bid is not None:  # unknown interruptible: maybe a bid, unbounded
            report(render(rule, "unknown", **fields), None)
            return


def _gpus_on_demand(view: InstanceView) -> int:
    """An instance's GPUs if it may rent on demand (unknown counts as on demand: the worst case), else 0."""
    return 0 if view.interruptible is True else view.gpus_worst_case


def on_demand_gpu_share(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """Counts GPUs, not instances or dollars: the share of capacity that cannot be interrupted is what a
    platform team trades for cost, and a GPU count cannot drift with prices."""
    rule = RuleName.ON_DEMAND_GPU_SHARE
    loaded = stack_and_config(OnDemandGpuShareConfig, rule, args, report)
    if loaded is None:
        return
    stack, views, config = loaded
    limit = max([config.max_on_demand_share, *active_allows(config.exceptions, today or utc_today())])
    total = sum(v.gpus_worst_case for v in views)
    on_demand = sum(_gpus_on_demand(v) for v in views)
    if total == 0 or Decimal(on_demand) <= money(limit) * total:
        return
    detail = ", ".join(f"{v.name}: {_gpus_on_demand(v)}" for v in views if _gpus_on_demand(v))
    share = (Decimal(on_demand) / total * 100).quantize(Decimal(1))
    report(render(rule, "over", team=config.team, stack=stack, value=on_demand, total=total, share=share,
                  limit=f"{(money(limit) * 100).normalize():f}", detail=detail), None)
