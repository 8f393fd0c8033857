"""Builds the vastguard policy pack from `policies.rules.RULES`.

Kept apart from `__main__.py` because `PolicyPack(...)` starts the gRPC server and never returns: everything
that tests or tools need (the policies, their schemas, levels and descriptions) is built here, and only
`serve()` blocks.
"""

from __future__ import annotations

from typing import NoReturn

from pulumi_policy import EnforcementLevel, Policy, PolicyPack, ResourceValidationPolicy, StackValidationPolicy

from policies.config import config_schema
from policies.rules import RULES

__all__ = ["PACK_NAME", "build_policies", "serve"]

PACK_NAME = "vastguard"
DESCRIPTION = (
    "Team limits for Vast.ai GPU fleets: GPU allow-list, $/h caps, host reliability, images, disk, instance and "
    "GPU counts, daily/monthly budgets from estimated cost, team/stack binding and time-boxed exceptions."
)


def build_policies() -> list[Policy]:
    policies: list[Policy] = []
    for rule in RULES:
        if rule.resource is not None:
            policies.append(ResourceValidationPolicy(
                name=rule.name.value, description=rule.description, validate=rule.resource,
                enforcement_level=rule.level, config_schema=config_schema(rule.config),
            ))
        elif rule.stack is not None:
            policies.append(StackValidationPolicy(
                name=rule.name.value, description=rule.description, validate=rule.stack,
                enforcement_level=rule.level, config_schema=config_schema(rule.config),
            ))
    return policies


def serve() -> NoReturn:
    """Serve the pack to the engine (prints the port, then blocks until the engine kills the process)."""
    PolicyPack(name=PACK_NAME, policies=build_policies(), enforcement_level=EnforcementLevel.MANDATORY,
               description=DESCRIPTION)
    raise SystemExit(0)  # unreachable in practice: PolicyPack serves until the process is killed
