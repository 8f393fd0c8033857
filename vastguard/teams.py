"""Onboarding and retiring a team: `vastguard team add NAME` wires a new team into the platform stack, its own
stack and its policy file in one step; `team remove NAME` retires one; `team check` validates the policy files.

A new team gets three edits, owned by two parties:

- `stacks/Pulumi.<team>.yaml`, the team's own: `vastguard:team`, `vastguard:keyFrom: platform` (its keys come
  from the platform stack), a one-group fleet with `count: 0` (valid, within its limits, renting nothing until
  the team raises the count). With `--own-key` it takes no keys from the platform and says how to store its
  own key as an encrypted Pulumi secret instead.
- `policies/teams/<team>.json`, the platform team's: the onboarding template's conservative limits (2
  instances, RTX 4090 only, $10/day), with the team name and its stack filled into every block, optionally
  raised with --gpus / --max-instances / --max-gpus / --daily-budget / --max-dph.
- its entry in `stacks/Pulumi.platform.yaml`, the platform team's: its Vast team and its preview and deploy keys
  (vastguard/platform_stack.py); not with `--own-key`.

All are validated before any is written (the stack with `fleet.declaration.parse_fleet`, the policy file with
`policies.teamfile`, the platform entry with `fleet.platform_declaration.parse_platform`), and none overwrites:
onboarding twice must not silently reset a team's negotiated limits.

`team remove` destroys the team's stack first (its instances: with the team's deploy key, from the platform),
then removes its stack file, its policy file and its platform entry; the platform stack's next `pulumi up`
deletes its keys, members, roles and the team (Vast refunds what is left to the owner). The team stack's
history stays in the state backend for the reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from fleet.access_fields import recipient_env
from fleet.declaration import TEAM_NAME, FleetError, parse_fleet
from fleet.gpus import allowed
from fleet.platform_declaration import set_team_key_command
from fleet.stack_config import SET_KEY_COMMAND
from policies.images import image_allowed
from policies.names import RuleName
from policies.platform_config import PlatformFileError as PlatformPolicyFileError
from policies.platform_config import load_platform_file
from policies.teamfile import TEMPLATE, TeamFile, TeamFileError, check_files, parse_team_file
from vastguard import codeowners
from vastguard.keys import DeliveryError
from vastguard.platform_stack import (
    PLATFORM_STACK,
    PlatformFileError,
    add_team_access,
    platform_stack_file,
    remove_team_access,
)
from vastguard.pulumi_cli import PulumiCLI, PulumiCommandError

__all__ = ["AddedTeam", "RemovedTeam", "TeamError", "TeamExistsError", "add_team", "register", "remove_team",
           "team_file_for"]

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
    platform_file: Path | None = None
    codeowners_file: Path | None = None


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


def _stack_yaml(name: str, team: TeamFile, *, own_key: bool = False) -> str:
    gpu = team.gpu_allow_list.allowed_gpus[0]
    if not image_allowed(STARTER_IMAGE, team.image_allowed_registries.allowed_images):
        raise TeamError(f"the template does not allow the starter image {STARTER_IMAGE}; add pytorch/pytorch to "
                        "vast-image-allowed-registries in policies/teams/_template.json")
    disk = min(STARTER_DISK_GB, team.disk_max_size.max_disk_gb)
    cap = team.instance_max_dph.max_dph
    if own_key:
        keys = f"""\
# Store the team's Vast.ai API key once, encrypted in this file (pulumi prompts; never put it in argv):
#   pulumi stack init {name}
#   {SET_KEY_COMMAND} --stack {name}
# Preview as CI does:
#   pulumi preview --stack {name} --policy-pack policies --policy-pack-config policies/teams/{name}.json
config:
  vastguard:team: {name}
"""
    else:
        keys = f"""\
# Its Vast.ai keys come from the platform stack (stacks/Pulumi.platform.yaml), never from this file: a preview
# runs with the team's read-only preview key ({recipient_env(name, "preview")} opens it), up, refresh and
# destroy with its deploy key ({recipient_env(name, "deploy")}). Preview as CI does:
#   ./dev vastguard ci preview --stack {name}
config:
  vastguard:team: {name}
  vastguard:keyFrom: {PLATFORM_STACK}
"""
    return f"""\
# {name}: the team's GPU fleet. Edit the groups below; a pull request previews the change against the
# team's limits, which live in policies/teams/{name}.json (owned by the platform team), not here.
#
{keys}  vastguard:fleet:
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
             template: Path | None = None, own_key: bool = False, today: date | None = None,
             owner: str | None = None) -> AddedTeam:
    """Create `stacks/Pulumi.<name>.yaml` and `policies/teams/<name>.json` under `root` and (unless `own_key`)
    declare the team in the platform stack; refuse to overwrite anything.

    The template is `root/policies/teams/_template.json` when it exists (the platform team's current
    defaults), else the one shipped with the pack."""
    _check_name(name)
    if name == PLATFORM_STACK:
        raise TeamError(f"{name!r} is the platform stack's name; choose another team name")
    stack_file = root / "stacks" / f"Pulumi.{name}.yaml"
    team_path = root / "policies" / "teams" / f"{name}.json"
    existing = [p for p in (stack_file, team_path) if p.exists()]
    if existing:
        raise TeamExistsError(
            f"team {name!r} already exists: {', '.join(str(p) for p in existing)}; edit it instead (nothing was "
            "written)")
    try:
        owners = codeowners.read(root)
        handle = codeowners.check_handle(owner or owners.default_handle(name), "--owner")
    except codeowners.CodeownersError as err:
        raise TeamError(str(err)) from None
    platform_file = None
    if not own_key:
        try:
            platform_file = add_team_access(root, name, today=today or date.today(), write=False)
        except PlatformFileError as err:
            raise TeamError(str(err)) from None
    template_path = template or (root / "policies" / "teams" / "_template.json")
    try:
        source = template_path if template_path.exists() else TEMPLATE
        base = parse_team_file(json.loads(source.read_text()), source=str(source))
        team = team_file_for(name, base, gpus=gpus, max_instances=max_instances, max_gpus=max_gpus,
                             daily_budget=daily_budget, max_dph=max_dph)
    except TeamFileError as err:
        raise TeamError(str(err)) from err
    stack_text = _stack_yaml(name, team, own_key=own_key)
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
    if platform_file is not None:
        try:
            add_team_access(root, name, today=today or date.today())
        except PlatformFileError as err:
            stack_file.unlink()
            team_path.unlink()
            raise TeamError(str(err)) from None
    owners_file = codeowners.set_team(root, name, handle)
    return AddedTeam(name=name, stack_file=stack_file, team_file=team_path, platform_file=platform_file,
                     codeowners_file=owners_file)


@dataclass(frozen=True)
class RemovedTeam:
    name: str
    destroyed: bool
    removed: list[Path]


def remove_team(name: str, *, root: Path, destroy: Callable[[str], None], stack_exists: Callable[[str], bool],
                keep_files: bool = False) -> RemovedTeam:
    """Retire team `name`: destroy its stack (its instances) first, then take it out of the platform stack and
    remove its stack and policy files. Nothing is edited when the destroy fails."""
    _check_name(name)
    if name == PLATFORM_STACK:
        raise TeamError(f"{name!r} is the platform stack, not a team")
    stack_file = root / "stacks" / f"Pulumi.{name}.yaml"
    team_path = root / "policies" / "teams" / f"{name}.json"
    declared = stack_file.exists() or team_path.exists()
    if not declared and not stack_exists(name):
        raise TeamError(f"no team {name!r}: no stacks/Pulumi.{name}.yaml, no policies/teams/{name}.json and no stack")
    destroyed = False
    if stack_exists(name):
        destroy(name)  # raises on failure: nothing below runs
        destroyed = True
    removed: list[Path] = []
    if not keep_files:
        if remove_team_access(root, name):
            removed.append(platform_stack_file(root))
        for path in (stack_file, team_path):
            if path.exists():
                path.unlink()
                removed.append(path)
        if name in codeowners.read(root).teams:
            removed.append(codeowners.set_team(root, name, remove=True))
    return RemovedTeam(name=name, destroyed=destroyed, removed=removed)


def _default_root() -> Path:
    from engine import repo_root

    return repo_root()


def _add_command(args: argparse.Namespace) -> int:
    root: Path = args.root or _default_root()
    try:
        added = add_team(args.name, root=root, gpus=args.gpus, max_instances=args.max_instances,
                         max_gpus=args.max_gpus, daily_budget=args.daily_budget, max_dph=args.max_dph,
                         own_key=args.own_key, owner=args.owner)
    except TeamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"added team {added.name}:\n  {added.stack_file}  (the team's fleet; commit it)\n"
          f"  {added.team_file}  (the team's limits; platform-owned)\n"
          f"  {added.codeowners_file}  (the team owns its stack file; the platform team everything else)")
    if added.platform_file is None:
        print(f"next: pulumi stack init {added.name} && {SET_KEY_COMMAND} --stack {added.name}")
        return 0
    print(f"  {added.platform_file}  (its Vast team and keys; platform-owned)\n"
          f"next, once merged:\n"
          f"  1. the platform stack's `pulumi up` creates team {added.name} on Vast;\n"
          f"  2. in Vast's console switch to team {added.name}, create an API key, and store it:\n"
          f"     {set_team_key_command(added.name)} --stack {PLATFORM_STACK}\n"
          f"  3. generate the two recipient secrets (`openssl rand -base64 32` each): "
          f"{recipient_env(added.name, 'preview')} for the team's preview job and "
          f"{recipient_env(added.name, 'deploy')} for its deploy job, both also in the platform job;\n"
          f"  4. the platform stack's `pulumi up` again makes the team's keys; then `pulumi stack init "
          f"{added.name}` and the team previews and deploys as usual")
    return 0


def _remove_command(args: argparse.Namespace) -> int:
    root: Path = args.root or _default_root()
    from engine import ensure
    from vastguard.workspace import Workspace

    cli = PulumiCLI.for_project(ensure(log=lambda line: print(line, file=sys.stderr)), root)
    workspace = Workspace(root=root, cli=cli)

    def stack_exists(name: str) -> bool:
        return name in {s["name"] for s in cli.json("stack", "ls")}

    def destroy(name: str) -> None:
        print(f"destroying stack {name} (its instances) ...", file=sys.stderr)
        workspace.destroy(name)

    try:
        removed = remove_team(args.name, root=root, destroy=destroy, stack_exists=stack_exists,
                              keep_files=args.keep_files)
    except (TeamError, DeliveryError, PulumiCommandError) as err:
        print(f"error: {err}\nnothing was removed", file=sys.stderr)
        return 1
    print(f"retired team {removed.name}: " + ("stack destroyed" if removed.destroyed else "no stack to destroy")
          + "".join(f"\n  edited/removed {p}" for p in removed.removed))
    print(f"next: commit; the platform stack's next `pulumi up` deletes team {removed.name}'s keys, members, roles "
          f"and the team on Vast (its remaining credit goes back to the owner); its stack history stays in the "
          f"backend for the reports (`pulumi stack rm {removed.name}` would delete it)")
    return 0


def _check_command(args: argparse.Namespace) -> int:
    root = args.root or _default_root()
    platform_files = [p for p in args.files if p.name == "platform.json"] if args.files else \
        [p for p in [root / "policies" / "platform.json"] if p.exists()]
    paths: list[Path] = [p for p in args.files if p not in platform_files] if args.files else \
        sorted((root / "policies" / "teams").glob("*.json"))
    failed = check_files(paths) if paths else 0
    for path in platform_files:
        try:
            platform = load_platform_file(path)
        except PlatformPolicyFileError as err:
            print(err)
            failed = 1
            continue
        print(f"{path}: ok (platform stack {platform.stack})")
    if not args.files:
        from vastguard.ci import known_teams

        problems = codeowners.check(root, known_teams(root))
        for problem in problems:
            print(problem)
        if problems:
            failed = 1
        else:
            print(f"{codeowners.codeowners_file(root)}: ok (every team stack owned by its team)")
    return failed


def _codeowners_command(args: argparse.Namespace) -> int:
    from vastguard.ci import known_teams

    root = args.root or _default_root()
    print(f"wrote {codeowners.write_for(root, known_teams(root))}")
    return 0


def register(subparsers: Any) -> None:
    """Add `team add` and `team check` to the `vastguard` parser; each sets `func(args) -> exit code`."""
    team = subparsers.add_parser("team", help="onboard or retire a team, or check the policy files")
    actions = team.add_subparsers(dest="team_command", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="create stacks/Pulumi.NAME.yaml and policies/teams/NAME.json",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add.add_argument("name", metavar="NAME", help="team name, e.g. ml-research")
    add.add_argument("--gpus", nargs="+", metavar="GPU", help="GPU allow-list, e.g. RTX_4090 A100 (template: RTX_4090)")
    add.add_argument("--max-instances", type=int, metavar="N", help="most instances (template: 2)")
    add.add_argument("--max-gpus", type=int, metavar="N", help="most GPUs over all instances (template: 2)")
    add.add_argument("--daily-budget", type=float, metavar="USD", help="daily budget in $ (template: 10)")
    add.add_argument("--max-dph", type=float, metavar="USD", help="$/h cap per instance (template: 0.40)")
    add.add_argument("--own-key", action="store_true",
                     help="the team brings its own Vast.ai key (vastai:apiKey) instead of the platform's keys")
    add.add_argument("--owner", metavar="HANDLE",
                     help="the GitHub team owning its stack file in CODEOWNERS (default: @<platform's org>/NAME)")
    add.add_argument("--root", type=Path, help="project root (default: this repository)")
    add.set_defaults(func=_add_command)

    remove = actions.add_parser("remove", help="retire a team: destroy its stack, then remove it from the platform",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    remove.add_argument("name", metavar="NAME", help="team name")
    remove.add_argument("--keep-files", action="store_true",
                        help="only destroy the stack; leave its files and its platform entry")
    remove.add_argument("--root", type=Path, help="project root (default: this repository)")
    remove.set_defaults(func=_remove_command)

    check = actions.add_parser("check", help="validate the policy files (default: policies/teams/*.json and "
                                             "policies/platform.json)")
    check.add_argument("files", nargs="*", type=Path, metavar="FILE")
    check.add_argument("--root", type=Path, help="project root (default: this repository)")
    check.set_defaults(func=_check_command)

    owners = actions.add_parser("codeowners", help="rewrite .github/CODEOWNERS for the team stacks in stacks/")
    owners.add_argument("--root", type=Path, help="project root (default: this repository)")
    owners.set_defaults(func=_codeowners_command)
