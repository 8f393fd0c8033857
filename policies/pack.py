"""Builds the vastguard policy pack from `policies.rules.RULES`.

Kept apart from `__main__.py` because `PolicyPack(...)` starts the gRPC server and never returns: everything
that tests or tools need (the policies, their schemas, levels and descriptions) is built here, and only
`serve()` blocks.
"""

from __future__ import annotations

from typing import NoReturn

from pulumi_policy import EnforcementLevel, Policy, PolicyPack, ResourceValidationPolicy, StackValidationPolicy

from policies.config import config_schema
from policies.platform_rules import PLATFORM_RULES, PlatformRule
from policies.rules import RULES, Rule

__all__ = ["PACK_NAME", "build_policies", "serve"]

PACK_NAME = "vastguard"
DESCRIPTION = (
    "Team limits for Vast.ai GPU fleets: GPU allow-list, $/h caps, host reliability, images, disk, instance and "
    "GPU counts, daily/monthly budgets from estimated cost, team/stack binding and time-boxed exceptions; and "
    "least privilege for the platform stack's Vast teams, roles, members and keys."
)


def build_policies() -> list[Policy]:
    """The fleet rules (team stacks, policies/rules.py), then the platform rules (policies/platform_rules.py)."""
    policies: list[Policy] = []
    registered: list[Rule | PlatformRule] = [*RULES, *PLATFORM_RULES]
    for rule in registered:
        name, description, level = rule.name.value, rule.description, rule.level
        schema = config_schema(rule.config)
        if rule.resource is not None:
            policies.append(ResourceValidationPolicy(name=name, description=description, validate=rule.resource,
                                                     enforcement_level=level, config_schema=schema))
        elif rule.stack is not None:
            policies.append(StackValidationPolicy(name=name, description=description, validate=rule.stack,
                                                  enforcement_level=level, config_schema=schema))
    return policies


def serve() -> NoReturn:
    """Serve the pack to the engine (prints the port, then blocks until the engine kills the process)."""
    PolicyPack(name=PACK_NAME, policies=build_policies(), enforcement_level=EnforcementLevel.MANDATORY,
               description=DESCRIPTION)
    raise SystemExit(0)  # unreachable in practice: PolicyPack serves until the process is killed
