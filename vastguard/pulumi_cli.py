"""Running the pinned Pulumi CLI: one place that builds its environment and its command lines.

Secrets never go in argv (`pulumi config set --secret` reads the value from stdin here) and never in our
error messages: a failed command's error quotes Pulumi's own output, which never prints decrypted secrets.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import Engine, project_env


class PulumiCommandError(RuntimeError):
    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        self.args_ = list(args)
        self.result = result
        tail = "\n".join((result.stdout + "\n" + result.stderr).strip().splitlines()[-40:])
        super().__init__(f"`pulumi {' '.join(args)}` exited {result.returncode}:\n{tail}")


@dataclass
class PulumiCLI:
    """The pinned `pulumi`, run in one project directory with the project's environment."""

    engine: Engine
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_project(cls, engine: Engine, cwd: Path, *, state_dir: Path | None = None,
                    extra_env: Mapping[str, str] | None = None) -> PulumiCLI:
        env = project_env(engine, state_dir=state_dir)
        env.update(extra_env or {})
        return cls(engine=engine, cwd=cwd, env=env)

    def run(self, *args: str, stack: str | None = None, check: bool = True, input_: str | None = None,
            timeout: float = 900, extra_env: Mapping[str, str] | None = None,
            drop_env: Collection[str] = ()) -> subprocess.CompletedProcess[str]:
        argv = [*args, "--non-interactive"]
        if stack is not None:
            argv += ["--stack", stack]
        env = {k: v for k, v in {**self.env, **(extra_env or {})}.items() if k not in drop_env}
        result = subprocess.run(
            [str(self.engine.pulumi), *argv], cwd=self.cwd, env=env,
            input=input_, capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and result.returncode != 0:
            raise PulumiCommandError(argv, result)
        return result

    def json(self, *args: str, stack: str | None = None) -> Any:
        return json.loads(self.run(*args, "--json", stack=stack).stdout)

    def set_secret(self, key: str, value: str, *, stack: str) -> None:
        """`pulumi config set --secret` with the value on stdin, never in argv."""
        self.run("config", "set", "--secret", key, stack=stack, input_=value)
