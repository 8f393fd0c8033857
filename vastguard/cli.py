"""The `vastguard` command line: thin wiring of each concern's own subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine import EngineError, ensure, project_env, repo_root
from engine.build import reported_version
from vastguard import keys
from vastguard.pulumi_cli import PulumiCLI


def _engine_command(args: argparse.Namespace) -> int:
    engine = ensure(log=lambda line: print(line, file=sys.stderr))
    if args.what == "bin":
        print(engine.bin_dir)
    else:
        print(f"pulumi v{reported_version(engine.pulumi)} ({engine.source}: {engine.bin_dir})")
    return 0


def missing_policy_config(pulumi_args: Sequence[str], root: Path) -> str | None:
    """The error for a `--policy-pack-config` file that does not exist (pulumi would only say `open ...`)."""
    for i, arg in enumerate(pulumi_args):
        value = arg.split("=", 1)[1] if arg.startswith("--policy-pack-config=") else (
            pulumi_args[i + 1] if arg == "--policy-pack-config" and i + 1 < len(pulumi_args) else None)
        if value and not (root / value).exists():
            team = Path(value).stem
            return (f"no team policy config {value}: team {team!r} has no limits yet; create them with "
                    f"`./dev vastguard team add {team}` (then review {value}), or fix the path")
    return None


def _pulumi_command(args: argparse.Namespace) -> int:
    if problem := missing_policy_config(args.pulumi_args, repo_root()):
        print(f"error: {problem}", file=sys.stderr)
        return 1
    engine = ensure(log=lambda line: print(line, file=sys.stderr))
    env = project_env(engine)
    project_dir = keys.project_dir_of_args(args.pulumi_args, repo_root())
    # A team stack that takes its keys from the platform stack gets the command's key (preview or deploy) in the
    # child's environment only: opened here from its envelope, never printed, never in argv.
    try:
        env.update(keys.delivered_env(
            args.pulumi_args, project_dir=project_dir, env=env,
            stack_lookup=lambda: keys.selected_stack(engine.pulumi, project_dir, env),
            cli_runner=pulumi_runner(project_dir, env["PULUMI_BACKEND_URL"])))
    except keys.DeliveryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    os.chdir(repo_root())
    os.execve(str(engine.pulumi), [str(engine.pulumi), *args.pulumi_args], env)
    return 0  # unreachable: execve replaces this process


def pulumi_runner(project_dir: Path, backend: str) -> Callable[..., str]:
    """The pinned Pulumi CLI for the report commands (Pulumi Cloud history, decrypting a stack's key)."""
    cli = PulumiCLI.for_project(ensure(log=lambda line: print(line, file=sys.stderr)), project_dir,
                                extra_env={"PULUMI_BACKEND_URL": backend})

    def run(*args: str, stack: str | None = None) -> str:
        return cli.run(*args, stack=stack).stdout

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vastguard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    engine = sub.add_parser("engine", help="show (building if needed) the pinned Pulumi engine")
    engine.add_argument("what", nargs="?", choices=["version", "bin"], default="version")
    engine.set_defaults(func=_engine_command)

    pulumi = sub.add_parser("pulumi", help="run the pinned pulumi with the project's backend and passphrase defaults",
                            add_help=False)
    pulumi.add_argument("pulumi_args", nargs=argparse.REMAINDER)
    pulumi.set_defaults(func=_pulumi_command)

    from budget import cli as budget_cli
    from reports import cli as reports_cli
    from vastguard import ci, demo, teams

    demo.register(sub)
    teams.register(sub)
    ci.register(sub)
    reports_cli.register(sub, pulumi=pulumi_runner, local_state=repo_root() / ".pulumi-state", stack_key=_read_key)
    budget_cli.register(sub, local_state=repo_root() / ".pulumi-state", keys_for=_budget_keys)
    return parser


def _read_key(backend_url: str, stack: str) -> str | None:
    from reports.charges import ChargesError
    from vastguard.keys import DeliveryError, read_key_of

    try:
        return read_key_of(stack, project_dir=repo_root(), backend_url=backend_url)
    except DeliveryError as err:
        raise ChargesError(str(err)) from None


def _budget_keys(backend_url: str) -> Any:
    from budget.keys import EnvKeys
    from vastguard.keys import DeliveredKeys

    return DeliveredKeys(EnvKeys(), project_dir=repo_root(), backend_url=backend_url)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["pulumi"]:
        # Everything after `pulumi` is pulumi's: argparse's REMAINDER refuses a first argument that looks like an
        # option (`vastguard pulumi -C dir preview`, `vastguard pulumi --version`).
        args = argparse.Namespace(func=_pulumi_command, pulumi_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except EngineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
