"""A team's fleet declaration: named groups of identical instances, read from its stack config.

    config:
      vastguard:team: ml-engineering
      vastguard:fleet:
        training:              # group name: instances are training-0, training-1, ...
          gpu: RTX_4090        # marketplace name or family (A100 = any A100)
          count: 2
          num_gpus: 1
          image: pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime
          disk_gb: 32
          max_dph: 0.60        # $/h cap per instance (GPU + storage)
          state: running       # or stopped
        batch:
          gpu: RTX_4090
          interruptible: true  # rent at a bid: paused while a higher-priority rental holds the machine
          max_bid: 0.25        # $/h bid per instance (storage on top, within max_dph)
          image: pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime
          max_dph: 0.30

Every error names the stack, the group and the field, so a typo in YAML is fixed in one look; nothing is
declared from an invalid fleet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet.instance import (
    MAX_DISK_GB,
    DesiredState,
    Environment,
    Geolocation,
    ImageReference,
    InstanceSpec,
    MaxBid,
    Number,
)

GROUP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
TEAM_NAME = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
MAX_COUNT = 64


class FleetError(ValueError):
    """An invalid fleet declaration; the message lists every problem with stack, group and field."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.stack = stack
        self.problems = problems
        body = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"stack {stack!r}: invalid fleet declaration in stacks/Pulumi.{stack}.yaml:\n{body}")


class Group(BaseModel):
    """One group of identical instances."""

    # The same value rules as the resource inputs (fleet.instance), so the program refuses what check would.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    gpu: str = Field(min_length=1)
    count: Annotated[int, Number] = Field(default=1, ge=0, le=MAX_COUNT)
    num_gpus: Annotated[int, Number] = Field(default=1, ge=1, le=16)
    image: ImageReference
    disk_gb: Annotated[float, Number] = Field(default=16.0, ge=8, le=MAX_DISK_GB)
    max_dph: Annotated[float, Number] = Field(gt=0, le=128)
    interruptible: bool = False
    max_bid: MaxBid = None
    min_reliability: Annotated[float, Number] = Field(default=0.95, ge=0, le=1)
    verified_only: bool = True
    geolocation: Geolocation | None = Field(default=None, description="country codes, e.g. US or 'US,CA'")
    onstart: str | None = None
    env: Environment = Field(default_factory=dict)
    state: DesiredState = "running"


class Fleet(BaseModel):
    model_config = ConfigDict(frozen=True)

    stack: str
    team: str
    groups: dict[str, Group]

    def instances(self) -> dict[str, InstanceSpec]:
        """Expand groups into named instance specs: `<group>-<index>`, stable as counts grow or shrink."""
        out: dict[str, InstanceSpec] = {}
        for name, group in sorted(self.groups.items()):
            for index in range(group.count):
                out[f"{name}-{index}"] = InstanceSpec(
                    team=self.team, gpu_name=group.gpu, num_gpus=group.num_gpus, image=group.image,
                    disk_gb=group.disk_gb, max_dph=group.max_dph, min_reliability=group.min_reliability,
                    verified_only=group.verified_only, geolocation=group.geolocation, onstart=group.onstart,
                    env=group.env, state=group.state, label=f"{self.team}/{name}-{index}",
                    interruptible=group.interruptible, max_bid=group.max_bid,
                )
        return out


def group_of(instance_name: str) -> str | None:
    """The group an instance of the fleet belongs to: its name is `<group>-<index>` (`Fleet.instances`)."""
    group, _, index = instance_name.rpartition("-")
    return group if group and index.isdigit() else None


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def parse_fleet(stack: str, team: Any, fleet: Any) -> Fleet:
    """Validate `vastguard:team` and `vastguard:fleet` (already parsed from YAML/JSON)."""
    problems: list[str] = []
    if not isinstance(team, str) or not TEAM_NAME.match(team):
        problems.append(
            f"vastguard:team: {team!r} is not a team name (lower-case letters, digits and dashes); "
            f"set it with: pulumi config set vastguard:team <team> --stack {stack}"
        )
    groups: dict[str, Group] = {}
    if fleet is None:
        fleet = {}
    if not isinstance(fleet, Mapping):
        problems.append("vastguard:fleet: must be a mapping of group name -> group (see README.md, A team's fleet)")
        fleet = {}
    for name, raw in fleet.items():
        if not isinstance(name, str) or not GROUP_NAME.match(name):
            problems.append(f"group {name!r}: a group name is lower-case letters, digits and dashes, max 40")
            continue
        if not isinstance(raw, Mapping):
            problems.append(f"group {name!r}: must be a mapping with at least gpu, image and max_dph")
            continue
        try:
            groups[name] = Group.model_validate(raw)
        except ValidationError as err:
            for e in err.errors():
                field = _where(e["loc"]) or "(group)"
                msg = e["msg"].removeprefix("Value error, ")
                if e["type"] == "extra_forbidden":
                    msg = f"unknown field; valid fields: {', '.join(Group.model_fields)}"
                problems.append(f"group {name!r}, field {field!r}: {msg} (got {e.get('input')!r})")
    if problems:
        raise FleetError(stack, problems)
    return Fleet(stack=stack, team=team, groups=groups)
