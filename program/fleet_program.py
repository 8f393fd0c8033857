"""Declare a team's fleet from its stack config (stacks/Pulumi.<team>.yaml), and its spend reading."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi

from fleet.budget import WINDOW_KINDS, WindowKind
from fleet.costs import CostBasis, fleet_cost
from fleet.declaration import FleetError, parse_fleet
from fleet.spend import TEAM_SPEND_NAME, TeamSpendInputs
from fleet.stack_config import TEAM_FILES_ENV
from policies.names import RuleName
from providers.team_spend import TeamSpend
from providers.vast_instance import Instance

EXPORTED_FIELDS = ("gpu_name", "num_gpus", "state", "status", "instance_id", "dph_total", "storage_cost",
                   "disk_gb", "quote", "ssh_host", "ssh_port", "public_ip", "max_dph")


def spend_windows(team_file: Mapping[str, Any] | None) -> tuple[str, tuple[WindowKind, ...]]:
    """The time zone and the windows to read, as the team's file sets its budgets: the day always, the month when
    it has a monthly budget. Without a readable file: UTC and both (the pack checks the time zone against the
    file it is given, and denies a reading in another one)."""
    if team_file is None:
        return "UTC", WINDOW_KINDS
    actual = team_file.get(RuleName.ACTUAL_SPEND.value)
    timezone = actual.get("timezone", "UTC") if isinstance(actual, Mapping) else "UTC"
    monthly = team_file.get(RuleName.MONTHLY_BUDGET.value)
    has_month = isinstance(monthly, Mapping) and monthly.get("monthly_budget") is not None
    return (timezone if isinstance(timezone, str) else "UTC"), (("day", "month") if has_month else ("day",))


def _team_file(team: str) -> Mapping[str, Any] | None:
    directory = Path(os.environ.get(TEAM_FILES_ENV) or Path.cwd() / "policies" / "teams")
    try:
        raw = json.loads((directory / f"{team}.json").read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, Mapping) else None


def run() -> dict[str, Instance]:
    stack = pulumi.get_stack()
    config = pulumi.Config("vastguard")
    try:
        fleet = parse_fleet(stack, config.get("team"), config.get_object("fleet"))
    except FleetError as err:
        # RunError: Pulumi prints the message alone, without a Python traceback.
        raise pulumi.RunError(str(err)) from None

    specs = fleet.instances()
    instances = {name: Instance(name, spec) for name, spec in specs.items()}
    # After the instances, depending on them: a deploy records the team's spend once its changes are made.
    timezone, windows = spend_windows(_team_file(fleet.team))
    declared = hashlib.sha256(json.dumps({n: s.model_dump(mode="json") for n, s in specs.items()},
                                         sort_keys=True).encode()).hexdigest()[:16]
    TeamSpend(TEAM_SPEND_NAME, TeamSpendInputs(team=fleet.team, stack=stack, timezone=timezone, windows=windows,
                                               fleet=declared),
              pulumi.ResourceOptions(depends_on=list(instances.values())))

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
