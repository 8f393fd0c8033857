"""`vastguard budget allocate`, `vastguard guard`, `vastguard resume`: thin wiring of budget/ to the command line.

Exit codes: 0 done, 1 something was left undone (each message says what, and that running the command again
finishes it); with `--watch` the guard runs until interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from budget import allocate as allocation
from budget import guard as guarding
from budget.alerts import WEBHOOK_ENV, Alerter
from budget.allocate import Allocator
from budget.guard import Guard, TeamOutcome, resume
from budget.keys import EnvKeys, KeyLookup
from budget.policy import TeamPolicy, load_policies
from budget.store import BudgetLog, BudgetLogError, actor
from policies.teamfile import TEAMS_DIR, TeamFileError
from reports.sources import SourceError, open_diy_bucket
from vastclient import URL_ENV, VastClient

Connect = Callable[[str], AbstractContextManager[VastClient]]
# The keys for a backend URL: the environment's, or (wired by vastguard) the platform stack's envelopes too.
KeysFor = Callable[[str], KeyLookup]


def parse_interval(text: str) -> float:
    """`900`, `15m`, `1h`, `30s`: seconds between guard passes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an interval: e.g. 15m, 900 (seconds) or 1h")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def connector(base_url: str | None, *, pace: bool = True) -> Connect:
    """Clients paced at Vast's published rate limits (per key: each team's own)."""

    def connect(key: str) -> AbstractContextManager[VastClient]:
        return VastClient(api_key=key, base_url=base_url, pace=pace)

    return connect


def _backend(args: argparse.Namespace) -> str:
    if args.backend:
        return str(args.backend)
    if url := os.environ.get("PULUMI_BACKEND_URL"):
        return url
    return f"file://{Path(args.local_state or '.pulumi-state').resolve()}"


def _report(title: str, outcomes: Sequence[TeamOutcome], *, out: Any = None) -> int:
    out = out or sys.stdout
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    lines = [f"## {title}"]
    for o in outcomes:
        lines.append(f"- **{o.team}**" + ("" if not o.lines else ": " + "; ".join(o.lines)))
        lines.extend(f"  - error: {e}" for e in o.errors)
    text = "\n".join(lines)
    print(text, file=out)
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 1 if any(o.errors for o in outcomes) else 0


def _setup(args: argparse.Namespace) -> tuple[BudgetLog, list[TeamPolicy], Connect, KeyLookup]:
    backend = _backend(args)
    log = BudgetLog(open_diy_bucket(backend))
    policies = load_policies(Path(args.team_files) if args.team_files else TEAMS_DIR, args.team or (),
                             today=datetime.now(UTC).date())
    keys_for: KeysFor = getattr(args, "keys_for", None) or (lambda _backend: EnvKeys())
    return log, policies, connector(args.vast_url or os.environ.get(URL_ENV) or None), keys_for(backend)


def run_allocate(args: argparse.Namespace) -> int:
    log, policies, connect, keys = _setup(args)
    prepaid = [p for p in policies if p.prepaid is not None]
    if not prepaid:
        print("no team is in prepaid mode (vast-budget-enforcement.prepaid in its team file): nothing to allocate")
        return 0
    allocator = Allocator(log=log, keys=keys, connect=connect, actor=actor("vastguard budget allocate"))
    return _report("vastguard budget allocate", allocator.run(prepaid))


def run_guard(args: argparse.Namespace) -> int:
    log, policies, connect, keys = _setup(args)
    guard = Guard(log=log, keys=keys, connect=connect, alerter=Alerter.from_env(args.webhook),
                  actor=actor("vastguard guard"))
    while True:
        try:
            code = _report(f"vastguard guard ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)", guard.run(policies))
        except (BudgetLogError, SourceError) as err:
            if args.watch is None:
                raise
            print(f"error: {err}; the next pass tries again", file=sys.stderr)  # a service keeps watching
            code = 1
        for problem in guard.alerter.problems:
            print(f"warning: {problem}", file=sys.stderr)
        guard.alerter.problems.clear()
        if args.watch is None:
            return code
        time.sleep(args.watch)


def run_resume(args: argparse.Namespace) -> int:
    log, policies, connect, keys = _setup(args)
    who = actor("vastguard resume")
    outcomes = [resume(p, log=log, keys=keys, connect=connect, actor=who, reason=args.reason,
                       alerter=Alerter.from_env(args.webhook)) for p in policies]
    return _report("vastguard resume", outcomes)


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (TeamFileError, SourceError, BudgetLogError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130

    return run


def _common(parser: argparse.ArgumentParser, local_state: Path | None, *, teams: bool = True,
            keys_for: KeysFor | None = None) -> None:
    parser.set_defaults(local_state=local_state, keys_for=keys_for)
    if teams:
        parser.add_argument("--team", action="append", metavar="TEAM", help="only this team (repeatable)")
    parser.add_argument("--team-files", metavar="DIR", help="the team files (default: policies/teams)")
    parser.add_argument("--backend", metavar="URL",
                        help="the state backend the budget log lives in, next to the stacks' state: file://DIR, "
                             "s3://bucket/prefix, azblob://container (default: $PULUMI_BACKEND_URL, else the "
                             "project's .pulumi-state)")
    parser.add_argument("--vast-url", metavar="URL", help=f"Vast.ai API base URL (default: ${URL_ENV}, else Vast.ai)")


def register(subparsers: Any, *, local_state: Path | None = None, keys_for: KeysFor | None = None) -> None:
    budget = subparsers.add_parser("budget", help="prepaid team credit: vastguard budget allocate")
    actions = budget.add_subparsers(dest="budget_command", required=True, metavar="ACTION")
    allocate = actions.add_parser(
        "allocate", help="top each prepaid team's Vast balance up to what is left of its budget (and take back "
                         "what a finished period left unused)",
        description=allocation.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(allocate, local_state, keys_for=keys_for)
    allocate.set_defaults(func=_guarded(run_allocate))

    guard = subparsers.add_parser(
        "guard", help="each team's actual spend vs its budgets: alert once per crossing, pause, idle GPUs",
        description=guarding.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(guard, local_state, keys_for=keys_for)
    guard.add_argument("--watch", type=parse_interval, metavar="INTERVAL",
                       help="run a pass every INTERVAL (15m, 900, 1h) until interrupted: a long-running service")
    guard.add_argument("--webhook", metavar="URL",
                       help=f"where alerts go (Slack-compatible JSON; default ${WEBHOOK_ENV}); never printed")
    guard.set_defaults(func=_guarded(run_guard))

    back = subparsers.add_parser("resume", help="lift a team's budget pause now, on the record")
    _common(back, local_state, teams=False, keys_for=keys_for)
    back.add_argument("team", metavar="TEAM", type=lambda t: [t])
    back.add_argument("--reason", required=True, help="why (recorded, and shown by vastguard audit)")
    back.add_argument("--webhook", metavar="URL", help=f"announce it (default ${WEBHOOK_ENV})")
    back.set_defaults(func=_guarded(run_resume))
