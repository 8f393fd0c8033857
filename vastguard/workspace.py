"""A working copy of the vastguard project for a set of team stacks: used by the demo and the tests.

It copies the project's entry files and stack configs into a directory of its own (so the demo and tests never
touch the committed `stacks/` files, which `pulumi stack init` would salt and `config set --secret` would
fill), points the runtime at the project's virtualenv, and drives the pinned engine through `PulumiCLI`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine import Engine, repo_root
from fleet.platform_declaration import KEY_FROM_CONFIG, TEAM_KEYS_CONFIG
from fleet.stack_config import API_KEY_CONFIG, TEAM_FILES_ENV, URL_CONFIG
from vastclient import URL_ENV
from vastguard.keys import delivered_env, is_platform_stack
from vastguard.pulumi_cli import PulumiCLI

POLICY_PACK = repo_root() / "policies"


PLATFORM_POLICY_CONFIG = POLICY_PACK / "platform.json"


def team_policy_config(team: str) -> Path:
    return POLICY_PACK / "teams" / f"{team}.json"


def policy_config_for(project_dir: Path, stack: str) -> Path:
    """The pack's config for a stack: the platform's file for the platform stack, else the team's own."""
    return PLATFORM_POLICY_CONFIG if is_platform_stack(project_dir, stack) else team_policy_config(stack)


@dataclass
class Workspace:
    root: Path
    cli: PulumiCLI

    @classmethod
    def create(cls, engine: Engine, root: Path, *, state_dir: Path, vast_url: str | None = None,
               extra_env: Mapping[str, str] | None = None, source: Path | None = None) -> Workspace:
        source = source or repo_root()
        root.mkdir(parents=True, exist_ok=True)
        (root / "stacks").mkdir(exist_ok=True)
        project = yaml.safe_load((source / "Pulumi.yaml").read_text())
        project["runtime"]["options"]["virtualenv"] = str(repo_root() / ".venv")
        (root / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
        shutil.copyfile(source / "__main__.py", root / "__main__.py")
        for stack_file in (source / "stacks").glob("Pulumi.*.yaml"):
            target = root / "stacks" / stack_file.name
            if not target.exists():
                shutil.copyfile(stack_file, target)
        # The program reads the team's budget windows from its team file, as it finds it at the repository's root.
        env = {TEAM_FILES_ENV: str(POLICY_PACK / "teams"), **(extra_env or {})}
        if vast_url:
            env[URL_ENV] = vast_url
        return cls(root=root, cli=PulumiCLI.for_project(engine, root, state_dir=state_dir, extra_env=env))

    def stack_file(self, team: str) -> Path:
        return self.root / "stacks" / f"Pulumi.{team}.yaml"

    def _init_stack(self, stack: str, vast_url: str | None) -> None:
        if stack not in {s["name"] for s in self.cli.json("stack", "ls")}:
            self.cli.run("stack", "init", stack)
        if vast_url:
            self.cli.run("config", "set", URL_CONFIG, vast_url, stack=stack)

    def init_team(self, team: str, *, api_key: str | None = None, vast_url: str | None = None) -> None:
        """A team stack with its own key (`vastai:apiKey`), or, without `api_key`, one that takes its keys from
        the platform stack (`vastguard:keyFrom` in its stack file, as committed)."""
        if api_key is not None:
            self.own_key(team)
        self._init_stack(team, vast_url)
        if api_key is not None:
            self.cli.set_secret(API_KEY_CONFIG, api_key, stack=team)

    def own_key(self, team: str) -> None:
        """This working copy of the team's stack brings its own key: it no longer takes keys from the platform."""
        data = yaml.safe_load(self.stack_file(team).read_text())
        if data["config"].pop(KEY_FROM_CONFIG, None) is not None:
            self.stack_file(team).write_text(yaml.safe_dump(data, sort_keys=False))

    def init_platform(self, *, personal_key: str, vast_url: str | None = None, stack: str = "platform") -> None:
        """The platform stack, with the platform owner's personal key (it creates the teams): a stack with its
        own key, as far as setting it up goes."""
        self.init_team(stack, api_key=personal_key, vast_url=vast_url)

    def set_team_key(self, team: str, key: str, *, stack: str = "platform") -> None:
        """The console's key inside `team`, as the platform stack's secret `vastguard:teamKeys.<team>`."""
        self.cli.run("config", "set", "--secret", "--path", f"{TEAM_KEYS_CONFIG}.{team}", stack=stack, input_=key)

    def key_env(self, stack: str, command: str) -> dict[str, str]:
        """The key `pulumi <command>` needs for a stack that takes its keys from the platform stack ({} else)."""
        return delivered_env([command, "--stack", stack], project_dir=self.root, env=self.cli.env,
                             stack_lookup=lambda: stack, log=lambda _line: None,
                             cli_runner=lambda *args, stack=None: self.cli.run(*args, stack=stack).stdout)

    def fleet(self, team: str) -> dict[str, Any]:
        config = yaml.safe_load(self.stack_file(team).read_text())["config"]
        fleet: dict[str, Any] = config.get("vastguard:fleet") or {}
        return fleet

    def set_fleet(self, team: str, fleet: Mapping[str, Any]) -> None:
        data = yaml.safe_load(self.stack_file(team).read_text())
        data["config"]["vastguard:fleet"] = dict(fleet)
        self.stack_file(team).write_text(yaml.safe_dump(data, sort_keys=False))

    def _policy_args(self, team: str, policy: bool) -> list[str]:
        if not policy:
            return []
        return ["--policy-pack", str(POLICY_PACK), "--policy-pack-config", str(policy_config_for(self.root, team))]

    def preview(self, team: str, *, policy: bool = True, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.cli.run("preview", *self._policy_args(team, policy), stack=team, check=check,
                            extra_env=self.key_env(team, "preview"))

    def up(self, team: str, *, policy: bool = True, check: bool = True, message: str | None = None,
           timeout: float = 900, refresh: bool = False) -> subprocess.CompletedProcess[str]:
        extra = ["--message", message] if message else []
        if refresh:
            extra.append("--refresh")
        return self.cli.run("up", "--yes", "--skip-preview", *extra, *self._policy_args(team, policy),
                            stack=team, check=check, timeout=timeout, extra_env=self.key_env(team, "up"))

    def refresh(self, team: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cli.run("refresh", "--yes", "--skip-preview", stack=team, check=check,
                            extra_env=self.key_env(team, "refresh"))

    def destroy(self, team: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cli.run("destroy", "--yes", "--skip-preview", stack=team, check=check,
                            extra_env=self.key_env(team, "destroy"))

    def outputs(self, team: str) -> dict[str, Any]:
        out: dict[str, Any] = self.cli.json("stack", "output", stack=team)
        return out
