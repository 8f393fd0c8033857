"""Declare a team's fleet from its stack config (stacks/Pulumi.<team>.yaml)."""

from __future__ import annotations

from typing import Any

import pulumi

from fleet.costs import CostBasis, fleet_cost
from fleet.declaration import FleetError, parse_fleet
from providers.vast_instance import Instance

EXPORTED_FIELDS = ("gpu_name", "num_gpus", "state", "status", "instance_id", "dph_total", "storage_cost",
                   "disk_gb", "quote", "ssh_host", "ssh_port", "public_ip", "max_dph")


def run() -> dict[str, Instance]:
    stack = pulumi.get_stack()
    config = pulumi.Config("vastguard")
    try:
        fleet = parse_fleet(stack, config.get("team"), config.get_object("fleet"))
    except FleetError as err:
        # RunError: Pulumi prints the message alone, without a Python traceback.
        raise pulumi.RunError(str(err)) from None

    instances = {name: Instance(name, spec) for name, spec in fleet.instances().items()}

    def describe(inst: Instance) -> pulumi.Output[dict[str, Any]]:
        return pulumi.Output.all(**{f: getattr(inst, f) for f in EXPORTED_FIELDS}).apply(dict)

    described = {name: describe(inst) for name, inst in instances.items()}
    pulumi.export("team", fleet.team)
    pulumi.export("fleet", described)
    pulumi.export(
        "estimated_cost",
        pulumi.Output.all(*described.values()).apply(
            lambda props: fleet_cost(CostBasis.from_properties(p) for p in props).rounded()),
    )
    return instances
