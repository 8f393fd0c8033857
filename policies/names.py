"""The policy names: the keys of a team file's blocks, of `--policy-pack-config` and of every diagnostic.

Kebab-case and prefixed `vast-` so that a preview mixing several packs shows at a glance which rules are ours.
They are a public contract (team files, CI logs, the lead's engine tests match them): rename only with a
migration of every file under policies/teams/.
"""

from __future__ import annotations

from enum import StrEnum


class RuleName(StrEnum):
    TEAM_BINDING = "vast-team-binding"
    GPU_ALLOW_LIST = "vast-gpu-allow-list"
    INSTANCE_MAX_DPH = "vast-instance-max-dph"
    HOST_MIN_RELIABILITY = "vast-host-min-reliability"
    VERIFIED_HOSTS_ONLY = "vast-verified-hosts-only"
    IMAGE_ALLOWED_REGISTRIES = "vast-image-allowed-registries"
    DISK_MAX_SIZE = "vast-disk-max-size"
    MAX_INSTANCES = "vast-max-instances"
    MAX_GPUS = "vast-max-gpus"
    DAILY_BUDGET = "vast-daily-budget"
    DAILY_BUDGET_WARNING = "vast-daily-budget-warning"
    MONTHLY_BUDGET = "vast-monthly-budget"
    MAX_HOURLY_BURN = "vast-max-hourly-burn"
    POLICY_EXCEPTIONS = "vast-policy-exceptions"
    INTERRUPTIBLE_REQUIRED = "vast-interruptible-required"
    BID_CAP = "vast-bid-cap"
    ON_DEMAND_GPU_SHARE = "vast-on-demand-gpu-share"
    ACTUAL_SPEND = "vast-actual-spend"
    BUDGET_ENFORCEMENT = "vast-budget-enforcement"


class PlatformRuleName(StrEnum):
    """The platform stack's rules (policies/platform_rules.py), configured by policies/platform.json."""

    BINDING = "vast-platform-binding"
    KEY_PERMISSIONS = "vast-platform-key-permissions"
    ROLE_CEILING = "vast-platform-role-ceiling"
    MEMBER_ROLES = "vast-platform-member-roles"
    MAX_OWNERS = "vast-platform-max-owners"
    KEY_IP_ALLOWLIST = "vast-platform-key-ip-allowlist"
    KEY_MAX_AGE = "vast-platform-key-max-age"
    UNDECLARED_MEMBERS = "vast-platform-undeclared-members"
