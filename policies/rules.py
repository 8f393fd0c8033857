"""The rules: one function per policy, and `RULES`, the one place they are registered with name and level.

Each function has the signature the policy SDK calls, `(args, report_violation)`, plus an optional `today`
that tests set to judge exception expiry on a fixed date (the pack passes nothing: today in UTC).

How they stay correct at preview: resource rules read the INPUTS after the provider's `check`, which adds a
live `quote`; stack rules read OUTPUTS (for an instance about to be created, the engine echoes those same
inputs). Every value goes through `policies.instances`, which turns Pulumi's unknowns into `UNKNOWN`; a rule
then judges the worst case the declaration allows (the `max_dph` cap for an unknown price, 16 GPUs for an
unknown count, an unverified host, any GPU, any image) instead of letting the SDK skip it with an advisory.

How they fail closed: every rule loads its block with `policies.config.load`; with no team file applied (no
`team` in the block) or an invalid block, the rule reports that, naming the file to create or fix, and stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol, TypeVar

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, StackValidationArgs

from fleet.costs import money
from fleet.gpus import allowed, normalize
from policies.bids import (
    BidCapConfig,
    InterruptibleRequiredConfig,
    OnDemandGpuShareConfig,
    bid_cap,
    interruptible_required,
    on_demand_gpu_share,
)
from policies.config import (
    ActualSpendConfig,
    BudgetEnforcementConfig,
    Config,
    DailyBudgetConfig,
    DailyBudgetWarningConfig,
    DiskMaxSizeConfig,
    GpuAllowListConfig,
    HostMinReliabilityConfig,
    ImageAllowedRegistriesConfig,
    InstanceMaxDphConfig,
    MaxGpusConfig,
    MaxHourlyBurnConfig,
    MaxInstancesConfig,
    MonthlyBudgetConfig,
    PolicyExceptionsConfig,
    TeamBindingConfig,
    VerifiedHostsOnlyConfig,
    active_allows,
)
from policies.images import image_allowed
from policies.instances import (
    MAX_GPUS_PER_INSTANCE,
    FleetEstimate,
    QuoteView,
    Unknown,
    estimate_fleet,
    instance_and_config,
    spend_of,
    stack_and_config,
    utc_today,
)
from policies.names import RuleName
from policies.report import dollars, listing, render
from policies.spend import actual_spend, budget_enforcement, judge

__all__ = ["RULES", "Rule"]

C = TypeVar("C", bound=Config)


def _number(value: float | Decimal) -> str:
    """0.95 -> `0.95`, 200.0 -> `200`: numbers in messages as a person would write them."""
    return f"{value:g}" if isinstance(value, float) else str(value.normalize())


# ---------------------------------------------------------------------------------------------------------
# Resource rules (every vastai:Instance, inputs after check)
# ---------------------------------------------------------------------------------------------------------


def gpu_allow_list(args: ResourceValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """A declared family (`A100`) passes only if the allow-list covers the whole family: every model it could
    rent must be allowed, which without the marketplace's catalogue holds exactly when some entry is the family
    itself or a broader one. The quote names the model the provider would actually rent: checked too."""
    rule = RuleName.GPU_ALLOW_LIST
    loaded = instance_and_config(GpuAllowListConfig, rule, args, report)
    if loaded is None:
        return
    view, config = loaded
    allow = config.effective(today or utc_today())
    fields = {"team": config.team, "resource": view.name, "stack": view.stack,
              "limit": listing(normalize(entry) for entry in allow)}
    gpu = view.gpu_name
    if not isinstance(gpu, str):
        report(render(rule, "unknown", **fields), None)
    elif not allowed(gpu, allow):
        narrower = any(normalize(entry).startswith(normalize(gpu) + " ") for entry in allow)
        report(render(rule, "family" if narrower else "not-allowed", value=normalize(gpu), **fields), None)
    quote = view.quote
    if isinstance(quote, QuoteView) and isinstance(quote.gpu_name, str) and not allowed(quote.gpu_name, allow):
        report(render(rule, "quoted", value=quote.gpu_name, **fields), None)


def instance_max_dph(args: ResourceValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """Both the declared cap and the live quote must be within the team's per-instance cap; with no quote (or
    an unknown one) the worst case is the declared max_dph, which is checked anyway."""
    rule = RuleName.INSTANCE_MAX_DPH
    loaded = instance_and_config(InstanceMaxDphConfig, rule, args, report)
    if loaded is None:
        return
    view, config = loaded
    cap = max(money(v) for v in [config.max_dph, *active_allows(config.exceptions, today or utc_today())])
    fields = {"team": config.team, "resource": view.name, "stack": view.stack, "limit": dollars(cap)}
    if not isinstance(view.max_dph, float):
        report(render(rule, "unknown", **fields), None)
    elif money(view.max_dph) > cap:
        report(render(rule, "max-dph", value=dollars(view.max_dph), **fields), None)
    quote = view.quote
    if isinstance(quote, QuoteView) and isinstance(quote.dph_total, float) and money(quote.dph_total) > cap:
        report(render(rule, "quote", value=dollars(quote.dph_total), **fields), None)


def host_min_reliability(
    args: ResourceValidationArgs, report: ReportViolation, today: date | None = None
) -> None:
    """The provider only rents hosts at or above the instance's min_reliability, so bounding that input
    bounds every host the instance can land on."""
    rule = RuleName.HOST_MIN_RELIABILITY
    loaded = instance_and_config(HostMinReliabilityConfig, rule, args, report)
    if loaded is None:
        return
    view, config = loaded
    floor = min([config.min_reliability, *active_allows(config.exceptions, today or utc_today())])
    fields = {"team": config.team, "resource": view.name, "stack": view.stack, "limit": _number(floor)}
    if isinstance(view.min_reliability, Unknown):
        report(render(rule, "unknown", **fields), None)
    elif view.min_reliability < floor:
        report(render(rule, "below", value=_number(view.min_reliability), **fields), None)


def verified_hosts_only(
    args: ResourceValidationArgs, report: ReportViolation, today: date | None = None
) -> None:
    """Unverified Vast hosts have not passed Vast's checks; a team rents them only when its file (or an
    active exception with allow: true) says so."""
    rule = RuleName.VERIFIED_HOSTS_ONLY
    loaded = instance_and_config(VerifiedHostsOnlyConfig, rule, args, report)
    if loaded is None:
        return
    view, config = loaded
    if view.verified_only is True:
        return
    granted: list[bool] = active_allows(config.exceptions, today or utc_today())
    if config.allow_unverified or any(granted):
        return
    value = "unknown at preview" if isinstance(view.verified_only, Unknown) else "false"
    report(render(rule, "unverified", team=config.team, resource=view.name, stack=view.stack, value=value), None)


def image_allowed_registries(
    args: ResourceValidationArgs, report: ReportViolation, today: date | None = None
) -> None:
    """The image runs with the team's data and its Vast API access; only images from registries the platform
    team trusts may run."""
    rule = RuleName.IMAGE_ALLOWED_REGISTRIES
    loaded = instance_and_config(ImageAllowedRegistriesConfig, rule, args, report)
    if loaded is None:
        return
    view, config = loaded
    allow = config.effective(today or utc_today())
    fields = {"team": config.team, "resource": view.name, "stack": view.stack, "limit": listing(allow)}
    if not isinstance(view.image, str):
        report(render(rule, "unknown", **fields), None)
    elif not image_allowed(view.image, allow):
        report(render(rule, "not-allowed", value=view.image, **fields), None)


def disk_max_size(args: ResourceValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """Disk is billed even while an instance is stopped, so a large disk is a standing cost."""
    rule = RuleName.DISK_MAX_SIZE
    loaded = instance_and_config(DiskMaxSizeConfig, rule, args, report)
    if loaded is None:
        return
    view, config = loaded
    cap = max([config.max_disk_gb, *active_allows(config.exceptions, today or utc_today())])
    fields = {"team": config.team, "resource": view.name, "stack": view.stack, "limit": _number(cap)}
    if isinstance(view.disk_gb, Unknown):
        report(render(rule, "unknown", **fields), None)
    elif view.disk_gb > cap:
        report(render(rule, "too-large", value=_number(view.disk_gb), **fields), None)


# ---------------------------------------------------------------------------------------------------------
# Stack rules (all of the stack's resources, outputs)
# ---------------------------------------------------------------------------------------------------------


def team_binding(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """A team file governs only the stacks it names, and only instances labelled with its team: applying
    ml-research's generous limits to another team's stack must deny. This rule runs even for an empty
    stack, so a stack previewed with no team file at all is denied here."""
    rule = RuleName.TEAM_BINDING
    loaded = stack_and_config(TeamBindingConfig, rule, args, report)
    if loaded is None:
        return
    stack, views, config = loaded
    if stack not in config.stacks:
        report(render(rule, "stack-not-governed", team=config.team, stack=stack, limit=listing(config.stacks)),
               None)
    for view in views:
        if view.team == config.team:
            continue
        value = ("unknown at preview" if isinstance(view.team, Unknown)
                 else "missing" if view.team is None else view.team)
        report(render(rule, "team-mismatch", team=config.team, resource=view.name, stack=view.stack, value=value),
               view.urn)


def max_instances(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """Stopped instances count too: they keep their machine and their disk, and can be started without a
    change that a preview would see."""
    rule = RuleName.MAX_INSTANCES
    loaded = stack_and_config(MaxInstancesConfig, rule, args, report)
    if loaded is None:
        return
    stack, views, config = loaded
    cap = max([config.max_instances, *active_allows(config.exceptions, today or utc_today())])
    if len(views) > cap:
        report(render(rule, "too-many", team=config.team, stack=stack, value=len(views), limit=cap), None)


def max_gpus(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """GPUs are what the marketplace prices; an instance whose num_gpus is unknown counts as the most an
    instance can have."""
    rule = RuleName.MAX_GPUS
    loaded = stack_and_config(MaxGpusConfig, rule, args, report)
    if loaded is None:
        return
    stack, views, config = loaded
    cap = max([config.max_gpus, *active_allows(config.exceptions, today or utc_today())])
    total = sum(view.gpus_worst_case for view in views)
    if total > cap:
        detail = ", ".join(
            f"{v.name}: {v.gpus_worst_case}" + (
                f" (unknown at preview, counted as {MAX_GPUS_PER_INSTANCE})" if isinstance(v.num_gpus, Unknown)
                else "")
            for v in views
        )
        report(render(rule, "too-many", team=config.team, stack=stack, value=total, limit=cap, detail=detail),
               None)


def _report_unbounded(rule: RuleName, estimate: FleetEstimate, team: str, limit: str,
                      report: ReportViolation) -> None:
    for view in estimate.unbounded:
        report(render(rule, "unbounded", team=team, resource=view.name, stack=view.stack, limit=limit), view.urn)


def daily_budget(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """The estimate is `fleet.costs` on each instance (actual $/h when it exists, the quote when it is new,
    storage only when stopped, the max_dph cap when nothing else is known), so the pack judges the same
    number the program exports as its estimated cost."""
    rule = RuleName.DAILY_BUDGET
    loaded = stack_and_config(DailyBudgetConfig, rule, args, report)
    if loaded is None:
        return
    stack, views, config = loaded
    budget = max(money(v) for v in [config.daily_budget, *active_allows(config.exceptions, today or utc_today())])
    estimate = estimate_fleet(views)
    _report_unbounded(rule, estimate, config.team, dollars(budget), report)
    judged = judge("day", estimate, spend_of(args.resources), stack)
    if judged is not None:
        if judged.total > budget:
            report(render(rule, "over-actual", team=config.team, stack=stack, spent=dollars(judged.spent),
                          projected=dollars(judged.projected), end=judged.window.end_text,
                          detail=judged.detail(estimate), value=dollars(judged.total), limit=dollars(budget)), None)
    elif estimate.cost.daily > budget:
        report(render(rule, "over", team=config.team, stack=stack, value=dollars(estimate.cost.daily),
                      detail=estimate.basis_summary(), limit=dollars(budget)), None)


def daily_budget_warning(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """Advisory: tells the team before the mandatory budget rule stops its next change. It reads the budget
    from its own block (a copy of vast-daily-budget's, checked by `vastguard team check`) and ignores
    exceptions: while one is active the team is above its normal budget, which is worth a warning."""
    rule = RuleName.DAILY_BUDGET_WARNING
    loaded = stack_and_config(DailyBudgetWarningConfig, rule, args, report)
    if loaded is None:
        return
    stack, views, config = loaded
    budget = money(config.daily_budget)
    estimate = estimate_fleet(views)
    judged = judge("day", estimate, spend_of(args.resources), stack)
    daily = estimate.cost.daily if judged is None else judged.total
    if budget <= 0 or daily <= 0 or daily < budget * money(config.warn_share):
        return
    share = (daily / budget * 100).quantize(Decimal(1))
    fields = {"team": config.team, "stack": stack, "value": dollars(daily), "share": share, "limit": dollars(budget),
              "warn": _number(config.warn_share * 100)}
    if judged is None:
        report(render(rule, "near", detail=estimate.basis_summary(), **fields), None)
    else:
        report(render(rule, "near-actual", spent=dollars(judged.spent), projected=dollars(judged.projected),
                      end=judged.window.end_text, detail=judged.detail(estimate), **fields), None)


def monthly_budget(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """Only when the team file sets a monthly budget (finance often budgets per month, engineers per day)."""
    rule = RuleName.MONTHLY_BUDGET
    loaded = stack_and_config(MonthlyBudgetConfig, rule, args, report)
    if loaded is None or loaded[2].monthly_budget is None:
        return
    stack, views, config = loaded
    budget = max(money(v) for v in [config.monthly_budget or 0,
                                     *active_allows(config.exceptions, today or utc_today())])
    estimate = estimate_fleet(views)
    _report_unbounded(rule, estimate, config.team, dollars(budget), report)
    spend = spend_of(args.resources)
    judged = judge("month", estimate, spend, stack)
    if judged is not None:
        if judged.total > budget:
            report(render(rule, "over-actual", team=config.team, stack=stack, spent=dollars(judged.spent),
                          projected=dollars(judged.projected), end=judged.window.end_text,
                          detail=judged.detail(estimate), value=dollars(judged.total), limit=dollars(budget)), None)
        return
    if spend.known is not None:
        report(render(rule, "unread", team=config.team, stack=stack, limit=dollars(budget)), spend.urn)
    if estimate.cost.monthly > budget:
        report(render(rule, "over", team=config.team, stack=stack, value=dollars(estimate.cost.monthly),
                      detail=estimate.basis_summary(), limit=dollars(budget)), None)


def max_hourly_burn(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """Only when set: a cap on the stack's total $/h, for teams whose budget allows short expensive bursts
    that a daily budget alone would not stop."""
    rule = RuleName.MAX_HOURLY_BURN
    loaded = stack_and_config(MaxHourlyBurnConfig, rule, args, report)
    if loaded is None or loaded[2].max_hourly_burn is None:
        return
    stack, views, config = loaded
    cap = max(money(v) for v in [config.max_hourly_burn or 0,
                                  *active_allows(config.exceptions, today or utc_today())])
    estimate = estimate_fleet(views)
    _report_unbounded(rule, estimate, config.team, dollars(cap), report)
    if estimate.cost.hourly > cap:
        report(render(rule, "over", team=config.team, stack=stack, value=dollars(estimate.cost.hourly),
                      detail=estimate.basis_summary(), limit=dollars(cap)), None)


def _show_allow(value: bool | float | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _number(value) if isinstance(value, float) else str(value)


def policy_exceptions(args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
    """Advisory: every preview shows which limits are relaxed, for whom, why and until when, and which
    exceptions have expired (they are ignored by the rules and should be removed or renewed)."""
    rule = RuleName.POLICY_EXCEPTIONS
    loaded = stack_and_config(PolicyExceptionsConfig, rule, args, report)
    if loaded is None:
        return
    _stack, _views, config = loaded
    day = today or utc_today()
    for grant in config.exceptions:
        key = "active" if grant.active(day) else "expired"
        report(render(rule, key, team=config.team, rule=grant.rule, value=_show_allow(grant.allow),
                      expires=grant.expires.isoformat(), reason=grant.reason, approver=grant.approver), None)


# ---------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------


class ResourceRule(Protocol):
    def __call__(self, args: ResourceValidationArgs, report: ReportViolation, today: date | None = None) -> None:
        ...


class StackRule(Protocol):
    def __call__(self, args: StackValidationArgs, report: ReportViolation, today: date | None = None) -> None:
        ...


@dataclass(frozen=True)
class Rule:
    """One policy: its name, a description that starts with a verb, its default level and config block."""

    name: RuleName
    description: str
    level: EnforcementLevel
    config: type[Config]
    resource: ResourceRule | None = None
    stack: StackRule | None = None

    @property
    def validate(self) -> Callable[..., None]:
        check = self.resource or self.stack
        if check is None:
            raise TypeError(f"rule {self.name} has no validation function")
        return check


MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

RULES: Sequence[Rule] = (
    Rule(RuleName.TEAM_BINDING,
         "Denies a stack unless a team file governing it is applied and its instances carry that team.",
         MANDATORY, TeamBindingConfig, stack=team_binding),
    Rule(RuleName.GPU_ALLOW_LIST,
         "Allows only GPU models on the team's allow-list, for the declared GPU (or family) and the quote.",
         MANDATORY, GpuAllowListConfig, resource=gpu_allow_list),
    Rule(RuleName.INSTANCE_MAX_DPH,
         "Caps each instance's max_dph and quoted $/h at the team's per-instance limit.",
         MANDATORY, InstanceMaxDphConfig, resource=instance_max_dph),
    Rule(RuleName.HOST_MIN_RELIABILITY,
         "Requires each instance's min_reliability to be at least the team's minimum host reliability.",
         MANDATORY, HostMinReliabilityConfig, resource=host_min_reliability),
    Rule(RuleName.VERIFIED_HOSTS_ONLY,
         "Requires verified hosts (verified_only: true) unless the team file allows unverified ones.",
         MANDATORY, VerifiedHostsOnlyConfig, resource=verified_hosts_only),
    Rule(RuleName.IMAGE_ALLOWED_REGISTRIES,
         "Allows only container images from the team's allowed registries and repositories.",
         MANDATORY, ImageAllowedRegistriesConfig, resource=image_allowed_registries),
    Rule(RuleName.DISK_MAX_SIZE,
         "Caps each instance's disk_gb at the team's maximum disk size.",
         MANDATORY, DiskMaxSizeConfig, resource=disk_max_size),
    Rule(RuleName.MAX_INSTANCES,
         "Caps the number of instances the stack declares at the team's maximum.",
         MANDATORY, MaxInstancesConfig, stack=max_instances),
    Rule(RuleName.MAX_GPUS,
         "Caps the number of GPUs over all the stack's instances at the team's maximum.",
         MANDATORY, MaxGpusConfig, stack=max_gpus),
    Rule(RuleName.DAILY_BUDGET,
         "Keeps the team's spend today (actual so far + the stack's estimate to the day's end) within its "
         "daily budget.",
         MANDATORY, DailyBudgetConfig, stack=daily_budget),
    Rule(RuleName.DAILY_BUDGET_WARNING,
         "Warns when the team's spend today (actual + projected) reaches a share of its daily budget.",
         ADVISORY, DailyBudgetWarningConfig, stack=daily_budget_warning),
    Rule(RuleName.MONTHLY_BUDGET,
         "Keeps the team's spend this month (actual so far + the stack's estimate to its end) within its "
         "monthly budget.",
         MANDATORY, MonthlyBudgetConfig, stack=monthly_budget),
    Rule(RuleName.MAX_HOURLY_BURN,
         "Caps the stack's total estimated $/h at the team's burn limit.",
         MANDATORY, MaxHourlyBurnConfig, stack=max_hourly_burn),
    Rule(RuleName.INTERRUPTIBLE_REQUIRED,
         "Requires the team's listed GPUs and groups to be rented interruptible (at a bid).",
         MANDATORY, InterruptibleRequiredConfig, resource=interruptible_required),
    Rule(RuleName.BID_CAP,
         "Caps each interruptible instance's bid (max_bid) at the team's per-instance bid cap.",
         MANDATORY, BidCapConfig, resource=bid_cap),
    Rule(RuleName.ON_DEMAND_GPU_SHARE,
         "Caps the share of the stack's GPUs rented on demand rather than interruptible.",
         MANDATORY, OnDemandGpuShareConfig, stack=on_demand_gpu_share),
    Rule(RuleName.POLICY_EXCEPTIONS,
         "Reports the team's active and expired policy exceptions.",
         ADVISORY, PolicyExceptionsConfig, stack=policy_exceptions),
    Rule(RuleName.ACTUAL_SPEND,
         "Requires the team's actual spend in its budget windows (Vast's charges) to be known at preview.",
         MANDATORY, ActualSpendConfig, stack=actual_spend),
    Rule(RuleName.BUDGET_ENFORCEMENT,
         "Denies starting GPUs while the budget guard has paused the team, until its budget window resets.",
         MANDATORY, BudgetEnforcementConfig, stack=budget_enforcement),
)

RULES_BY_NAME = {rule.name: rule for rule in RULES}
