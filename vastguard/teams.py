"""Onboarding a team: `vastguard team add NAME` writes its stack and its policy file; `team check` validates.

A new team gets two files, owned by two parties:

- `stacks/Pulumi.<team>.yaml`, the team's own: `vastguard:team`, a one-group fleet with `count: 0` (valid,
  within its limits, renting nothing until the team raises the count) and comments saying how to store its
  Vast.ai key as an encrypted Pulumi secret.
- `policies/teams/<team>.json`, the platform team's: the onboarding template's conservative limits (2
  instances, RTX 4090 only, $10/day), with the team name and its stack filled into every block, optionally
  raised with --gpus / --max-instances / --max-gpus / --daily-budget / --max-dph.

Both are validated before either is written (the stack with `fleet.declaration.parse_fleet`, the policy
file with `policies.teamfile`), and neither overwrites an existing file: onboarding twice must not silently
reset a team's negotiated limits.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.declaration import TEAM_NAME, FleetError, parse_fleet
from fleet.gpus import allowed
from fleet.stack_config import SET_KEY_COMMAND
from policies.images import image_allowed
from policies.names import RuleName
from policies.teamfile import TEMPLATE, TeamFile, TeamFileError, check_files, parse_team_file

__all__ = ["AddedTeam", "TeamError", "TeamExistsError", "add_team", "register", "team_file_for"]

STARTER_IMAGE = "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime"
STARTER_DISK_GB = 32


class TeamError(ValueError):
    """A team cannot be added as asked; the message says what to change."""


class TeamExistsError(TeamError):
    """The team already has a stack or a policy file; nothing was written."""


@dataclass(frozen=True)
class AddedTeam:
    name: str
    stack_file: Path
    team_file: Path


def _check_name(name: str) -> None:
    if not TEAM_NAME.fullmatch(name):
        raise TeamError(
            f"{name!r} is not a valid team name: use 2 to 40 lower-case letters, digits and dashes, starting with "
            "a letter (e.g. ml-research); it names the stack, the policy file and every cost report")


def team_file_for(name: str, template: TeamFile, *, gpus: Sequence[str] | None = None,
                  max_instances: int | None = None, max_gpus: int | None = None,
                  daily_budget: float | None = None, max_dph: float | None = None) -> TeamFile:
    """The template's limits for team `name`, governing stack `name`, with the given limits raised or lowered.

    Raising --max-instances alone also raises the GPU cap to at least one GPU per instance, so the two caps
    cannot contradict each other in a fresh file."""
    raw: dict[str, Any] = template.to_json()
    for body in raw.values():
        if isinstance(body, dict) and "team" in body:
            body["team"] = name
    raw[RuleName.TEAM_BINDING]["stacks"] = [name]
    if gpus is not None:
        raw[RuleName.GPU_ALLOW_LIST]["allowed_gpus"] = [g.strip() for g in gpus]
    if max_instances is not None:
        raw[RuleName.MAX_INSTANCES]["max_instances"] = max_instances
        if max_gpus is None:
            raw[RuleName.MAX_GPUS]["max_gpus"] = max(raw[RuleName.MAX_GPUS]["max_gpus"], max_instances)
    if max_gpus is not None:
        raw[RuleName.MAX_GPUS]["max_gpus"] = max_gpus
    if daily_budget is not None:
        raw[RuleName.DAILY_BUDGET]["daily_budget"] = daily_budget
        raw[RuleName.DAILY_BUDGET_WARNING]["daily_budget"] = daily_budget
    if max_dph is not None:
        raw[RuleName.INSTANCE_MAX_DPH]["max_dph"] = max_dph
    return parse_team_file(raw, source=f"policies/teams/{name}.json", expect_team=name)


def _stack_yaml(name: str, team: TeamFile) -> str:
    gpu = team.gpu_allow_list.allowed_gpus[0]
    if not image_allowed(STARTER_IMAGE, team.image_allowed_registries.allowed_images):
        raise TeamError(f"the template does not allow the starter image {STARTER_IMAGE}; add pytorch/pytorch to "
                        "vast-image-allowed-registries in policies/teams/_template.json")
    disk = min(STARTER_DISK_GB, team.disk_max_size.max_disk_gb)
    cap = team.instance_max_dph.max_dph
    return f"""\
# {name}: the team's GPU fleet. Edit the groups below; a pull request previews the change against the
# team's limits, which live in policies/teams/{name}.json (owned by the platform team), not here.
#
# Store the team's Vast.ai API key once, encrypted in this file (pulumi prompts; never put it in argv):
#   pulumi stack init {name}
#   {SET_KEY_COMMAND} --stack {name}
# Preview as CI does:
#   pulumi preview --stack {name} --policy-pack policies --policy-pack-config policies/teams/{name}.json
config:
  vastguard:team: {name}
  vastguard:fleet:
    dev:                   # instances are named dev-0, dev-1, ...
      gpu: {gpu}
      count: 0             # nothing is rented until you raise this (team cap: {team.max_instances.max_instances})
      num_gpus: 1
      image: {STARTER_IMAGE}
      disk_gb: {disk:g}
      max_dph: {cap:g}          # $/h cap per instance (GPU + disk); the team's cap is {cap:g}
      state: running       # or stopped: keeps the disk, pays storage only
"""


def _check_stack(name: str, text: str, team: TeamFile) -> None:
    """The stack must be one `parse_fleet` accepts and one the team's own policy would let through."""
    config = yaml.safe_load(text)["config"]
    try:
        fleet = parse_fleet(name, config["vastguard:team"], config["vastguard:fleet"])
    except FleetError as err:
        raise TeamError(f"the generated stack is invalid (a bug in vastguard.teams): {err}") from err
    for group_name, group in fleet.groups.items():
        if not allowed(group.gpu, team.gpu_allow_list.allowed_gpus) or group.max_dph > team.instance_max_dph.max_dph:
            raise TeamError(f"the generated group {group_name!r} would break the team's own limits")


def add_team(name: str, *, root: Path, gpus: Sequence[str] | None = None, max_instances: int | None = None,
             max_gpus: int | None = None, daily_budget: float | None = None, max_dph: float | None = None,
             template: Path | None = None) -> AddedTeam:
    """Create `stacks/Pulumi.<name>.yaml` and `policies/teams/<name>.json` under `root`; refuse to overwrite.

    The template is `root/policies/teams/_template.json` when it exists (the platform team's current
    defaults), else the one shipped with the pack."""
    _check_name(name)
    stack_file = root / "stacks" / f"Pulumi.{name}.yaml"
    team_path = root / "policies" / "teams" / f"{name}.json"
    existing = [p for p in (stack_file, team_path) if p.exists()]
    if existing:
        raise TeamExistsError(
            f"team {name!r} already exists: {', '.join(str(p) for p in existing)}; edit it instead (nothing was "
            "written)")
    template_path = template or (root / "policies" / "teams" / "_template.json")
    try:
        source = template_path if template_path.exists() else TEMPLATE
        base = parse_team_file(json.loads(source.read_text()), source=str(source))
        team = team_file_for(name, base, gpus=gpus, max_instances=max_instances, max_gpus=max_gpus,
                             daily_budget=daily_budget, max_dph=max_dph)
    except TeamFileError as err:
        raise TeamError(str(err)) from err
    stack_text = _stack_yaml(name, team)
    _check_stack(name, stack_text, team)

    stack_file.parent.mkdir(parents=True, exist_ok=True)
    team_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with team_path.open("x") as out:
            out.write(team.dumps())
    except FileExistsError:
        raise TeamExistsError(f"team {name!r} already exists: {team_path}; nothing was written") from None
    try:
        with stack_file.open("x") as out:
            out.write(stack_text)
    except FileExistsError:
        team_path.unlink()  # created a moment ago by us: leave the tree as we found it
        raise TeamExistsError(f"team {name!r} already exists: {stack_file}; nothing was written") from None
    return AddedTeam(name=name, stack_file=stack_file, team_file=team_path)


def _default_root() -> Path:
    from engine import repo_root

    return repo_root()


def _add_command(args: argparse.Namespace) -> int:
    root: Path = args.root or _default_root()
    try:
        added = add_team(args.name, root=root, gpus=args.gpus, max_instances=args.max_instances,
                         max_gpus=args.max_gpus, daily_budget=args.daily_budget, max_dph=args.max_dph)
    except TeamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"added team {added.name}:\n  {added.stack_file}  (the team's fleet; commit it)\n"
          f"  {added.team_file}  (the team's limits; platform-owned)\n"
          f"next: pulumi stack init {added.name} && {SET_KEY_COMMAND} --stack {added.name}")
    return 0


def _check_command(args: argparse.Namespace) -> int:
    paths: list[Path] = args.files or sorted(((args.root or _default_root()) / "policies" / "teams").glob("*.json"))
    return check_files(paths)


def register(subparsers: Any) -> None:
    """Add `team add` and `team check` to the `vastguard` parser; each sets `func(args) -> exit code`."""
    team = subparsers.add_parser("team", help="onboard a team, or check the teams' policy files")
    actions = team.add_subparsers(dest="team_command", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="create stacks/Pulumi.NAME.yaml and policies/teams/NAME.json",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add.add_argument("name", metavar="NAME", help="team name, e.g. ml-research")
    add.add_argument("--gpus", nargs="+", metavar="GPU", help="GPU allow-list, e.g. RTX_4090 A100 (template: RTX_4090)")
    add.add_argument("--max-instances", type=int, metavar="N", help="most instances (template: 2)")
    add.add_argument("--max-gpus", type=int, metavar="N", help="most GPUs over all instances (template: 2)")
    add.add_argument("--daily-budget", type=float, metavar="USD", help="daily budget in $ (template: 10)")
    add.add_argument("--max-dph", type=float, metavar="USD", help="$/h cap per instance (template: 0.40)")
    add.add_argument("--root", type=Path, help="project root (default: this repository)")
    add.set_defaults(func=_add_command)

    check = actions.add_parser("check", help="validate team policy files (default: all of policies/teams/)")
    check.add_argument("files", nargs="*", type=Path, metavar="FILE")
    check.add_argument("--root", type=Path, help="project root (default: this repository)")
    check.set_defaults(func=_check_command)
