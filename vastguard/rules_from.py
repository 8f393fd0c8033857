"""A pull request's preview judged by the base's rules: the project a PR preview runs is the trusted tree (the
base commit's checkout: its program, providers, policy pack, team files, platform stack, lock and vastguard),
with one input from the pull request's checkout: the `vastguard:fleet` of the team's stack file.

Why only the fleet: everything else in a team's stack file decides *where the job's key goes* or *whose rules
apply* (`vastguard:team`, `vastguard:keyFrom`, `vastai:url`, the secrets provider and its salt). A PR that
pointed `vastai:url` at its own server would receive the team's preview key; one that renamed its team would be
judged by another team's file. Those keys come from the base, and a PR that changes them is refused with the keys
named: they are platform changes, reviewed and merged first.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.stack_config import FLEET_CONFIG

__all__ = ["RulesError", "RulesVersion", "judged_project", "rules_commit"]

ENTRY_FILES = ("__main__.py",)


class RulesError(ValueError):
    """The pull request's stack file cannot be judged by the base's rules; the message says why and what to do."""


@dataclass(frozen=True)
class RulesVersion:
    source: str  # "base": the trusted tree judged a PR's stack file; "checkout": the checkout judged itself
    commit: str | None


def rules_commit(tree: Path) -> str | None:
    """The commit checked out in `tree` (the rules that judge), or None outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True, timeout=30,
                             check=False)
    except OSError:
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def _load(path: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError:
        raise RulesError(f"{what} {path} does not exist") from None
    except yaml.YAMLError as err:
        raise RulesError(f"{what} {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("config") or {}, dict):
        raise RulesError(f"{what} {path} must be a mapping with a `config:` mapping")
    return data


def judged_project(trusted: Path, pr_checkout: Path, stack: str, into: Path) -> Path:
    """A project directory in `into`: the trusted tree's project with the PR's fleet for `stack`."""
    name = f"Pulumi.{stack}.yaml"
    base = _load(trusted / "stacks" / name, "the base's stack file")
    pr = _load(pr_checkout / "stacks" / name, "the pull request's stack file")
    base_config: dict[str, Any] = dict(base.get("config") or {})
    pr_config: dict[str, Any] = dict(pr.get("config") or {})
    changed = sorted(k for k in set(base_config) | set(pr_config)
                     if k != FLEET_CONFIG and base_config.get(k) != pr_config.get(k))
    changed += sorted(k for k in set(base) | set(pr) if k != "config" and base.get(k) != pr.get(k))
    if changed:
        raise RulesError(
            f"the pull request changes {', '.join(changed)} in stacks/{name}: a pull request's preview takes only "
            f"{FLEET_CONFIG} from it (the team, its key source, the Vast URL and the secrets provider come from the "
            "base, since they decide where the job's key goes and whose rules apply); ask the platform team to "
            "make that change in a pull request of its own, then rebase")
    if FLEET_CONFIG in pr_config:
        base_config[FLEET_CONFIG] = pr_config[FLEET_CONFIG]
    else:
        base_config.pop(FLEET_CONFIG, None)
    into.mkdir(parents=True, exist_ok=True)
    project = yaml.safe_load((trusted / "Pulumi.yaml").read_text())
    venv = project.get("runtime", {}).get("options", {}).get("virtualenv")
    if isinstance(venv, str):
        project["runtime"]["options"]["virtualenv"] = str((trusted / venv).resolve())
    (into / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    for entry in ENTRY_FILES:
        shutil.copyfile(trusted / entry, into / entry)
    (into / "stacks").mkdir(exist_ok=True)
    for stack_file in (trusted / "stacks").glob("Pulumi.*.yaml"):
        shutil.copyfile(stack_file, into / "stacks" / stack_file.name)
    (into / "stacks" / name).write_text(yaml.safe_dump({**base, "config": base_config}, sort_keys=False))
    return into
