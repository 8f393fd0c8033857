"""Every violation message the pack can emit, as templates: one catalogue that rules render and tests match.

Why templates and not f-strings in the rules: the messages are an interface. Teams read them in CI (so each
names the team, the resource, the value, the limit and the way out), and tests, including tests that go
through the real engine, must recognise them without copying their wording. `render()` is the only way a
rule builds a message, and `pattern()` turns the same template into a regular expression, so a test written
as `pattern(RuleName.DAILY_BUDGET, "over", team="data-science")` keeps passing when the wording is improved,
and fails when the rule stops reporting.

The engine prints a diagnostic as the policy's description, a newline, then this message; match with
`pattern(...).search(text)`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

from policies.names import PlatformRuleName, RuleName

__all__ = ["COMMON", "MESSAGES", "PLATFORM_COMMON", "PLATFORM_MESSAGES", "dollars", "listing", "pattern", "render"]

# Messages any rule can emit about its own configuration block ({rule} is the block's policy name).
COMMON: Mapping[str, str] = {
    "config-missing": (
        "stack {stack}: no team policy config for {rule}; create policies/teams/{stack}.json with "
        "`vastguard team add {stack}` and preview with --policy-pack-config policies/teams/{stack}.json"
    ),
    "config-invalid": (
        "{team}: the {rule} block of policies/teams/{team}.json is invalid: {problems}; fix it (see "
        "policies/teams/_template.json) and check it with `vastguard team check policies/teams/{team}.json`"
    ),
}

MESSAGES: Mapping[RuleName, Mapping[str, str]] = {
    RuleName.TEAM_BINDING: {
        "stack-not-governed": (
            "{team}: policies/teams/{team}.json governs stacks [{limit}], not stack {stack}; preview stack "
            "{stack} with its own team's file, or add {stack} to the vast-team-binding stacks of "
            "policies/teams/{team}.json"
        ),
        "team-mismatch": (
            "{team}: {resource}: its team property is {value}, not {team}; set vastguard:team: {team} in "
            "stacks/Pulumi.{stack}.yaml, or preview with that team's own policy file"
        ),
    },
    RuleName.GPU_ALLOW_LIST: {
        "not-allowed": (
            "{team}: {resource}: GPU {value} is not on the team's GPU allow-list [{limit}]; "
            "use one of those or request a policy change"
        ),
        "family": (
            "{team}: {resource}: GPU family {value} could rent models outside the team's GPU allow-list "
            "[{limit}]; name an allowed model or request a policy change"
        ),
        "quoted": (
            "{team}: {resource}: the quoted offer's GPU {value} is not on the team's GPU allow-list [{limit}]; "
            "pin gpu_name to an allowed model or request a policy change"
        ),
        "unknown": (
            "{team}: {resource}: gpu_name is unknown at preview, so it could be any GPU, not only the team's "
            "GPU allow-list [{limit}]; declare gpu_name as a literal"
        ),
    },
    RuleName.INSTANCE_MAX_DPH: {
        "max-dph": (
            "{team}: {resource}: max_dph {value}/h exceeds the team's per-instance cap {limit}/h; "
            "lower max_dph in stacks/Pulumi.{stack}.yaml or request an exception"
        ),
        "quote": (
            "{team}: {resource}: the quoted price {value}/h exceeds the team's per-instance cap {limit}/h; "
            "lower max_dph in stacks/Pulumi.{stack}.yaml or request an exception"
        ),
        "unknown": (
            "{team}: {resource}: max_dph is unknown at preview, so its price is unbounded, above the team's "
            "per-instance cap {limit}/h; declare max_dph as a number in stacks/Pulumi.{stack}.yaml"
        ),
    },
    RuleName.HOST_MIN_RELIABILITY: {
        "below": (
            "{team}: {resource}: min_reliability {value} is below the team's minimum host reliability {limit}; "
            "set min_reliability to at least {limit} or request an exception"
        ),
        "unknown": (
            "{team}: {resource}: min_reliability is unknown at preview (worst case 0), below the team's "
            "minimum host reliability {limit}; declare min_reliability as a number"
        ),
    },
    RuleName.VERIFIED_HOSTS_ONLY: {
        "unverified": (
            "{team}: {resource}: verified_only is {value} but the team may rent verified hosts only; "
            "set verified_only: true or request an exception"
        ),
    },
    RuleName.IMAGE_ALLOWED_REGISTRIES: {
        "not-allowed": (
            "{team}: {resource}: image {value} is not from the team's allowed registries [{limit}]; "
            "use an image from one of them or request a policy change"
        ),
        "unknown": (
            "{team}: {resource}: image is unknown at preview, so it could come from any registry, not only "
            "[{limit}]; declare image as a literal"
        ),
    },
    RuleName.DISK_MAX_SIZE: {
        "too-large": (
            "{team}: {resource}: disk_gb {value} exceeds the team's maximum disk of {limit} GB; "
            "lower disk_gb in stacks/Pulumi.{stack}.yaml or request an exception"
        ),
        "unknown": (
            "{team}: {resource}: disk_gb is unknown at preview (worst case unbounded), above the team's "
            "maximum disk of {limit} GB; declare disk_gb as a number"
        ),
    },
    RuleName.MAX_INSTANCES: {
        "too-many": (
            "{team}: stack {stack} declares {value} instances, more than the team's cap of {limit}; "
            "lower the groups' count in stacks/Pulumi.{stack}.yaml or request an exception"
        ),
    },
    RuleName.MAX_GPUS: {
        "too-many": (
            "{team}: stack {stack} declares {value} GPUs ({detail}), more than the team's cap of {limit}; "
            "lower count or num_gpus in stacks/Pulumi.{stack}.yaml or request an exception"
        ),
    },
    RuleName.DAILY_BUDGET: {
        "over-actual": (
            "{team}: spent {spent} today + {projected} projected to {end} ({detail}) = {value} exceeds the daily "
            "budget {limit}; lower count or max_dph in stacks/Pulumi.{stack}.yaml, stop instances, or request a "
            "budget exception"
        ),
        "over": (
            "{team}: estimated daily spend {value} ({detail}) exceeds the daily budget {limit}; "
            "lower count or max_dph in stacks/Pulumi.{stack}.yaml, stop instances, or request a budget exception"
        ),
        "unbounded": (
            "{team}: {resource}: its cost cannot be bounded at preview (no actual price, no quote, max_dph "
            "unknown), so the daily budget {limit} cannot be checked; declare max_dph as a number"
        ),
    },
    RuleName.DAILY_BUDGET_WARNING: {
        "near-actual": (
            "{team}: spent {spent} today + {projected} projected to {end} ({detail}) = {value} is {share}% of the "
            "daily budget {limit}, at or above the {warn}% warning level; stop idle instances or plan a budget "
            "request"
        ),
        "near": (
            "{team}: estimated daily spend {value} ({detail}) is {share}% of the daily budget {limit}, at or "
            "above the {warn}% warning level; stop idle instances or plan a budget request"
        ),
    },
    RuleName.MONTHLY_BUDGET: {
        "over-actual": (
            "{team}: spent {spent} this month + {projected} projected to {end} ({detail}) = {value} exceeds the "
            "monthly budget {limit}; lower count or max_dph in stacks/Pulumi.{stack}.yaml, stop instances, or "
            "request a budget exception"
        ),
        "unread": (
            "{team}: the stack's spend reading has no month window, so the monthly budget {limit} cannot be judged "
            "on actual spend; the program reads it when policies/teams/{team}.json sets vast-monthly-budget "
            "(run it from the project root, or point VASTGUARD_TEAM_FILES at the team files)"
        ),
        "over": (
            "{team}: estimated monthly spend {value} ({detail}, x 730 h) exceeds the monthly budget {limit}; "
            "lower count or max_dph in stacks/Pulumi.{stack}.yaml, stop instances, or request a budget exception"
        ),
        "unbounded": (
            "{team}: {resource}: its cost cannot be bounded at preview (no actual price, no quote, max_dph "
            "unknown), so the monthly budget {limit} cannot be checked; declare max_dph as a number"
        ),
    },
    RuleName.MAX_HOURLY_BURN: {
        "over": (
            "{team}: estimated burn {value}/h ({detail}) exceeds the team's cap {limit}/h; "
            "lower count or max_dph in stacks/Pulumi.{stack}.yaml, stop instances, or request an exception"
        ),
        "unbounded": (
            "{team}: {resource}: its cost cannot be bounded at preview (no actual price, no quote, max_dph "
            "unknown), so the burn cap {limit}/h cannot be checked; declare max_dph as a number"
        ),
    },
    RuleName.INTERRUPTIBLE_REQUIRED: {
        "gpu": (
            "{team}: {resource}: GPU {value} must be rented interruptible by the team's policy (GPUs [{limit}]); "
            "set interruptible: true and a max_bid within the team's bid cap in group {group} of "
            "stacks/Pulumi.{stack}.yaml, or request an exception"
        ),
        "group": (
            "{team}: {resource}: group {group} must be interruptible by the team's policy (groups [{limit}]); "
            "set interruptible: true and a max_bid within the team's bid cap in stacks/Pulumi.{stack}.yaml, or "
            "request an exception"
        ),
        "unknown": (
            "{team}: {resource}: interruptible is unknown at preview, so it could rent on demand what the team "
            "must rent interruptible ([{limit}]); declare interruptible as a literal in group {group}"
        ),
    },
    RuleName.BID_CAP: {
        "over": (
            "{team}: {resource}: max_bid {value}/h exceeds the team's bid cap {limit}/h per instance; lower "
            "max_bid in stacks/Pulumi.{stack}.yaml or request an exception"
        ),
        "unknown": (
            "{team}: {resource}: max_bid is unknown at preview, so its bid is unbounded, above the team's bid cap "
            "{limit}/h; declare max_bid as a number in stacks/Pulumi.{stack}.yaml"
        ),
    },
    RuleName.ON_DEMAND_GPU_SHARE: {
        "over": (
            "{team}: stack {stack} rents {value} of its {total} GPUs on demand ({share}%; {detail}), more than the "
            "team's {limit}%; make groups interruptible (interruptible: true with a max_bid) in "
            "stacks/Pulumi.{stack}.yaml, or request an exception"
        ),
    },
    RuleName.ACTUAL_SPEND: {
        "missing": (
            "{team}: stack {stack} declares no vastai:TeamSpend, so its budgets cannot be judged on actual spend; "
            "deploy it with this repository's program (program/fleet_program.py declares one per team stack)"
        ),
        "invalid": (
            "{team}: stack {stack}: its vastai:TeamSpend does not hold a spend reading this pack can read; run the "
            "preview with this repository's program and provider"
        ),
        "unknown": (
            "{team}: the team's actual spend is unknown ({reason}), and unknown spend is never counted as $0; fix "
            "that and preview again, or (platform team) make vast-actual-spend advisory in "
            "policies/teams/{team}.json"
        ),
        "team-mismatch": (
            "{team}: stack {stack}'s spend reading is for team {value}, not {team}; set vastguard:team: {team} "
            "in stacks/Pulumi.{stack}.yaml"
        ),
        "timezone": (
            "{team}: stack {stack}'s spend was read for windows in {value}, but the team's budget windows are in "
            "{limit} (vast-actual-spend.timezone in policies/teams/{team}.json); run the preview from the project "
            "root (or point VASTGUARD_TEAM_FILES at the team files) so the program reads the team's file"
        ),
    },
    RuleName.BUDGET_ENFORCEMENT: {
        "paused": (
            "{team}: {resource}: the budget guard paused the team for {value} (its budget ran out), so no GPU may "
            "start before {limit}; keep it stopped until then, or lift the pause on the record with `vastguard "
            "resume {team}`"
        ),
    },
    RuleName.POLICY_EXCEPTIONS: {
        "active": (
            "{team}: exception to {rule} active until {expires}: allows {value} "
            "(reason: {reason}; approved by {approver})"
        ),
        "expired": (
            "{team}: exception to {rule} allowing {value} expired on {expires} and is ignored; remove it "
            "from policies/teams/{team}.json or ask {approver} to renew it"
        ),
    },
}

# Messages of the platform rules (policies/platform_rules.py): each names the team, the object (key, role, member),
# the permission or role at stake and the fix, in the platform declaration or policies/platform.json.
PLATFORM_COMMON: Mapping[str, str] = {
    "platform-config-missing": (
        "stack {stack} declares Vast teams' access but no platform policy config for {rule} was applied; preview "
        "it with --policy-pack-config policies/platform.json (`vastguard ci preview --stack {stack}` does)"
    ),
    "platform-config-invalid": (
        "stack {stack}: the {rule} block of policies/platform.json is invalid: {problems}; fix it and check it "
        "with `vastguard team check`"
    ),
}

PLATFORM_MESSAGES: Mapping[PlatformRuleName, Mapping[str, str]] = {
    PlatformRuleName.BINDING: {
        "stack-not-governed": (
            "policies/platform.json governs platform stack {limit}, not stack {stack}; preview stack {stack} with "
            "its own platform file, or set the stack of every block of policies/platform.json to {stack}"
        ),
    },
    PlatformRuleName.KEY_PERMISSIONS: {
        "not-allowed": (
            "{team}: {kind} key: permission {permission} is not allowed on keys given to teams (allowed: {limit}); "
            "remove it from teams.{team}.keys.{kind}.permissions in stacks/Pulumi.{stack}.yaml"
        ),
        "preview-write": (
            "{team}: preview key: permission {permission} writes, and a preview key carries no write permission; "
            "remove it from teams.{team}.keys.preview.permissions in stacks/Pulumi.{stack}.yaml (the deploy key "
            "is the one that writes)"
        ),
        "unknown": (
            "{team}: {kind} key: its permissions are unknown at preview, so they could grant anything; declare "
            "teams.{team}.keys.{kind}.permissions as a literal document"
        ),
    },
    PlatformRuleName.ROLE_CEILING: {
        "beyond": (
            "{team}: role {role}: grants {permission}, beyond the platform's ceiling for roles ({limit}); narrow "
            "the role's permissions in teams.{team}.roles of stacks/Pulumi.{stack}.yaml, or raise the ceiling in "
            "policies/platform.json"
        ),
        "unknown": (
            "{team}: role {role}: its permissions are unknown at preview, so they could exceed the ceiling; declare "
            "them as a literal document"
        ),
    },
    PlatformRuleName.MEMBER_ROLES: {
        "not-allowed": (
            "{team}: member {email}: role {role} is not allowed in team {team} (allowed: {limit}); give them one "
            "of those in teams.{team}.members of stacks/Pulumi.{stack}.yaml, or allow the role for {team} in "
            "policies/platform.json"
        ),
    },
    PlatformRuleName.MAX_OWNERS: {
        "too-many": (
            "{team}: {value} people can administer team {team} (permission {permission}: the creator and "
            "{detail}), more than the limit of {limit}; give fewer members the owner-like roles (manager, or a "
            "role granting {permission}) in teams.{team}.members of stacks/Pulumi.{stack}.yaml, or raise "
            "max_owners for {team} in policies/platform.json"
        ),
    },
    PlatformRuleName.KEY_IP_ALLOWLIST: {
        "missing": (
            "{team}: {kind} key: no IP allow-list, so it works from any address; set "
            "teams.{team}.keys.{kind}.ip_allowlist in stacks/Pulumi.{stack}.yaml to the addresses of the jobs "
            "that use it"
        ),
    },
    PlatformRuleName.KEY_MAX_AGE: {
        "too-old": (
            "{team}: {kind} key #{key_id} is {value} days old, beyond its maximum age of {limit} days; rotate it: "
            "set teams.{team}.keys.{kind}.rotated: {today} in stacks/Pulumi.{stack}.yaml (the new key is made "
            "and delivered before the old one is revoked)"
        ),
    },
    PlatformRuleName.UNDECLARED_MEMBERS: {
        "undeclared": (
            "{team}: {email} is a member of team {team} with role {role}, but the platform declares no such "
            "member (added outside the platform stack); declare them in teams.{team}.members of "
            "stacks/Pulumi.{stack}.yaml, or remove them from the team (`vastai remove member {user_id}` with the "
            "team's key)"
        ),
    },
}

_CENT = Decimal("0.01")


def dollars(amount: Decimal | float) -> str:
    """`$12.34`: money in messages always in cents, rounded half up like the reports."""
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    return f"${value.quantize(_CENT, rounding=ROUND_HALF_UP)}"


def listing(items: Iterable[object]) -> str:
    """`RTX 4090, A100`: the inside of the [...] a message shows a list in."""
    return ", ".join(str(item) for item in items)


AnyRule = RuleName | PlatformRuleName | str


def _catalogue(rule: AnyRule) -> Mapping[str, str]:
    name = str(rule)
    if name in {r.value for r in PlatformRuleName}:
        return PLATFORM_MESSAGES[PlatformRuleName(name)]
    return MESSAGES[RuleName(name)]


def _common(key: str) -> bool:
    return key in COMMON or key in PLATFORM_COMMON


def _template(rule: AnyRule, key: str) -> str:
    if key in COMMON:
        return COMMON[key]
    if key in PLATFORM_COMMON:
        return PLATFORM_COMMON[key]
    try:
        return _catalogue(rule)[key]
    except (KeyError, ValueError):
        raise KeyError(f"no message {key!r} for rule {rule!r}") from None


def render(rule: AnyRule, key: str, /, **fields: object) -> str:
    """The message `key` of `rule` (or a common one, whose {rule} is `rule`) with every field filled in."""
    text = _template(rule, key)
    values = {k: str(v) for k, v in fields.items()}
    if _common(key):
        values["rule"] = str(rule)
    return text.format(**values)


def _regex(text: str, fields: Mapping[str, object]) -> str:
    out: list[str] = []
    for literal, field, _spec, _conv in string.Formatter().parse(text):
        out.append(re.escape(literal))
        if field is not None:
            out.append(re.escape(str(fields[field])) if field in fields else ".+?")
    return "".join(out)


def pattern(rule: AnyRule, key: str | None = None, /, **fields: object) -> re.Pattern[str]:
    """A regex matching the messages `rule` renders (only `key` if given), with the given fields fixed.

    For example `pattern(RuleName.GPU_ALLOW_LIST, team="ml-engineering", value="H100 SXM")` matches
    "ml-engineering: trainer-0: GPU H100 SXM is not on the team's GPU allow-list [RTX 4090, A100]; ...".
    """
    keys = [key] if key is not None else list(_catalogue(rule))
    fixed = {"rule": str(rule), **fields} if key is not None and _common(key) else dict(fields)
    alternatives = [_regex(_template(rule, k), fixed) for k in keys]
    return re.compile("(?:" + "|".join(alternatives) + ")")
