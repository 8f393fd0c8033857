"""Editing the platform stack's declaration (`stacks/Pulumi.platform.yaml`) for `vastguard team add` / `remove`.

The file is YAML a person reviews: the header comment (everything above `config:`) is kept as written; the
config below it is rewritten (YAML has no comment-preserving round trip in the standard tooling, so comments
inside the declaration are not kept: the header says so). Every edit is validated with the program's own
`fleet.platform_declaration.parse_platform` before anything is written.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import yaml

from fleet.access_fields import KEY_KINDS
from fleet.platform_declaration import PLATFORM_CONFIG, PlatformError, parse_platform

__all__ = ["PLATFORM_STACK", "PlatformFileError", "add_team_access", "platform_stack_file", "remove_team_access"]

PLATFORM_STACK = "platform"


class PlatformFileError(ValueError):
    """The platform declaration cannot be edited as asked; nothing was written."""


def platform_stack_file(root: Path, stack: str = PLATFORM_STACK) -> Path:
    return root / "stacks" / f"Pulumi.{stack}.yaml"


def _split(text: str) -> tuple[str, dict[str, Any]]:
    header_lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith("#") or not line.strip():
            header_lines.append(line)
        else:
            break
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise PlatformFileError("the platform stack file has no `config:` mapping")
    return "".join(header_lines), data


def _teams(data: dict[str, Any]) -> dict[str, Any]:
    declared = data["config"].setdefault(PLATFORM_CONFIG, {})
    if not isinstance(declared, dict):
        raise PlatformFileError(f"{PLATFORM_CONFIG} is not a mapping")
    teams = declared.setdefault("teams", {})
    if not isinstance(teams, dict):
        raise PlatformFileError(f"{PLATFORM_CONFIG}.teams is not a mapping")
    return teams


def _render(path: Path, stack: str, header: str, data: dict[str, Any]) -> str:
    try:
        parse_platform(stack, data["config"].get(PLATFORM_CONFIG))
    except PlatformError as err:
        raise PlatformFileError(f"{path} would be invalid:\n{err}") from None
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def new_team_access(today: date) -> dict[str, Any]:
    """A new team's declaration: no custom role, no member yet, its two keys rotated today."""
    return {"keys": {kind: {"rotated": today.isoformat()} for kind in KEY_KINDS}}


def add_team_access(root: Path, name: str, *, today: date, stack: str = PLATFORM_STACK, write: bool = True) -> Path:
    """Declare team `name` in the platform stack (its Vast team and two keys); refuses a team already there."""
    path = platform_stack_file(root, stack)
    if not path.exists():
        raise PlatformFileError(f"no platform stack file {path}: create it (see README.md, Using it with real "
                                "Vast.ai), or add the team with --own-key to give it its own key")
    header, data = _split(path.read_text())
    teams = _teams(data)
    if name in teams:
        raise PlatformFileError(f"team {name!r} is already declared in {path}; edit it there")
    teams[name] = new_team_access(today)
    data["config"][PLATFORM_CONFIG]["teams"] = dict(sorted(teams.items()))
    text = _render(path, stack, header, data)
    if write:
        path.write_text(text)
    return path


def remove_team_access(root: Path, name: str, *, stack: str = PLATFORM_STACK) -> bool:
    """Take team `name` out of the platform stack's declaration; False when it was not declared there."""
    path = platform_stack_file(root, stack)
    if not path.exists():
        return False
    header, data = _split(path.read_text())
    teams = _teams(data)
    if name not in teams:
        return False
    del teams[name]
    path.write_text(_render(path, stack, header, data))
    return True
