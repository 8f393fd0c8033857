"""What the CI workflows (.github/workflows/) run, kept here so it is tested rather than written as shell.

- `vastguard ci changed --base REF` (or `--all`): the team stacks a change touches (a team's stack file or
  policy file: that team; code every stack runs, or the policy pack itself: every team), as a JSON matrix for
  GitHub Actions (also written to $GITHUB_OUTPUT as `matrix` and `any`).
- `vastguard ci set-key --stack TEAM`: put the team's Vast.ai key from the environment (`VASTAI_API_KEY`,
  filled from the CI secret `VASTGUARD_KEY_<TEAM>`) into the stack's config as a secret: the value goes to
  `pulumi config set --secret` on stdin, never in argv, and is masked in the GitHub log before anything runs.
- `vastguard ci preview --stack TEAM [--json]`: `pulumi preview` with the policy pack and the team's config,
  judged from the engine's event log (`--event-log`): the verdict, each violation and the cost change
  (before -> after, unknown never shown as $0) go to the job summary, and with `--json` to stdout as a
  versioned document (vastguard/schemas/ci-report.schema.json); exits 1 when denied or failed.
- `vastguard ci audit --stack TEAM [--json]`: the nightly check of what already runs: `pulumi policy analyze`
  runs the pack against the stack's current state, so an exception that expired or a limit lowered since the
  last deploy is reported the next morning; exits 1 on a mandatory finding.
- `vastguard ci up --stack TEAM`: `pulumi up` with the same pack and config; appends the deployed cost.

A team stack that takes its keys from the platform stack (`vastguard:keyFrom`) previews with its preview key and
deploys with its deploy key, opened from the platform's envelopes (vastguard/keys.py); `set-key` has nothing to
set for it. `--stack platform` (the stack declaring `vastguard:platform`) is judged by policies/platform.json;
`changed` lists team stacks only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from engine import ensure, repo_root
from fleet.access_fields import recipient_env
from fleet.platform_declaration import KEY_FROM_CONFIG
from fleet.stack_config import API_KEY_CONFIG
from vastguard.engine_events import EventLogError, parse_events
from vastguard.keys import DeliveryError, delivered_env, is_platform_stack, stack_config
from vastguard.pulumi_cli import PulumiCLI
from vastguard.summary import deploy_markdown, policy_audit_markdown, preview_markdown, to_json
from vastguard.verdict import PolicyAuditReport, PreviewReport, policy_audit_report, preview_report
from vastguard.workspace import PLATFORM_POLICY_CONFIG, POLICY_PACK, team_policy_config

KEY_ENV = "VASTAI_API_KEY"
DEBUG_COMMANDS = {"PULUMI_DEBUG_COMMANDS": "true"}  # engine 3.259 offers --event-log only behind this switch
SECRETS_PASSPHRASE = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
# Paths whose change can alter every team's preview: the program, its libraries, the pack, the toolchain.
SHARED_PREFIXES = ("program/", "fleet/", "providers/", "vastclient/", "policies/", "engine/")
SHARED_FILES = frozenset({"__main__.py", "Pulumi.yaml", "pyproject.toml", "requirements.lock"})
_STACK_FILE = re.compile(r"^stacks/Pulumi\.([A-Za-z0-9_.-]+)\.yaml$")
_TEAM_FILE = re.compile(r"^policies/teams/([A-Za-z0-9_.-]+)\.json$")


def secret_name(team: str) -> str:
    """The CI secret holding a team's Vast.ai key; the same name `vastguard reconcile` reads from the env."""
    return "VASTGUARD_KEY_" + re.sub(r"[^A-Z0-9]", "_", team.upper())


def known_teams(root: Path) -> list[str]:
    """The team stacks in `stacks/` (the platform stack, which declares teams' access, is not one)."""
    return sorted(m[1] for p in (root / "stacks").glob("Pulumi.*.yaml")
                  if (m := _STACK_FILE.match(f"stacks/{p.name}")) and not is_platform_stack(root, m[1]))


def changed_teams(paths: Iterable[str], teams: Iterable[str]) -> list[str]:
    """The teams whose preview a change can alter. Removed stacks (no longer in `teams`) are not listed."""
    all_teams = sorted(set(teams))
    hit: set[str] = set()
    for path in paths:
        path = path.strip()
        if not path:
            continue
        if (m := _STACK_FILE.match(path)) or (m := _TEAM_FILE.match(path)):
            hit.add(m[1])
        elif path in ("policies/teams/_template.json", "policies/platform.json"):
            continue  # onboarding's template, the platform stack's own file: no team's preview changes
        elif path in SHARED_FILES or path.startswith(SHARED_PREFIXES):
            return all_teams
    return [t for t in all_teams if t in hit]


def git_changed_paths(base: str, head: str = "HEAD", *, cwd: Path | None = None) -> list[str]:
    """Files changed between the merge base of `base` and `head`, and `head` (what a pull request changes)."""
    out = subprocess.run(["git", "diff", "--name-only", f"{base}...{head}"], cwd=cwd or repo_root(),
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def matrix(teams: Sequence[str]) -> dict[str, Any]:
    return {"include": [{"team": t, "secret": secret_name(t)} for t in teams]}


# --- commands -------------------------------------------------------------------------------------------------


def _append_summary(markdown: str, *, echo: bool = True) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    if echo:
        print(markdown)


def _cli(project_dir: Path) -> PulumiCLI:
    return PulumiCLI.for_project(ensure(log=lambda line: print(line, file=sys.stderr)), project_dir)


def _policy_args(team: str, policy_config: Path | None = None) -> list[str]:
    """This repository's pack and the team's file in it (the pack is platform-owned, not per project dir)."""
    config = policy_config or team_policy_config(team)
    return ["--policy-pack", str(POLICY_PACK), "--policy-pack-config", str(config)]


def key_env(cli: PulumiCLI, stack: str, command: str) -> dict[str, str]:
    """The key `pulumi <command>` of `stack` needs, when the stack takes its keys from the platform stack."""
    return delivered_env([command, "--stack", stack], project_dir=cli.cwd, env=cli.env, stack_lookup=lambda: stack,
                         cli_runner=lambda *args, stack=None: cli.run(*args, stack=stack).stdout)


def select_teams(base: str | None, head: str, root: Path, stdin: Iterable[str] = ()) -> list[str]:
    """All teams without a base or for a base of zeros (a push that created the branch); else the changed ones."""
    teams = known_teams(root)
    if base is None or re.fullmatch(r"0*", base):
        return teams
    paths = list(stdin) if base == "-" else git_changed_paths(base, head, cwd=root)
    return changed_teams(paths, teams)


def github_outputs(teams: Sequence[str]) -> str:
    """Lines for $GITHUB_OUTPUT: `matrix` (for strategy.matrix) and `any` (to skip the job when empty)."""
    return f"matrix={json.dumps(matrix(teams))}\nany={'true' if teams else 'false'}\n"


def _changed_command(args: argparse.Namespace) -> int:
    root = Path(args.root or repo_root())
    stdin = sys.stdin.read().splitlines() if args.base == "-" else []
    teams = select_teams(None if args.all else args.base, args.head, root, stdin)
    print(json.dumps(matrix(teams)) if args.format == "matrix" else "\n".join(teams))
    if target := os.environ.get("GITHUB_OUTPUT"):
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(github_outputs(teams))
    return 0


def _set_key_command(args: argparse.Namespace) -> int:
    if KEY_FROM_CONFIG in stack_config(Path(args.project_dir), args.stack):
        # Nothing to store: its preview and up open the team's key from the platform stack's envelope.
        print(f"stack {args.stack} takes its keys from the platform stack ({KEY_FROM_CONFIG}): nothing to set; "
              f"`ci preview` and `ci up` open its key with {recipient_env(args.stack, 'preview')} / "
              f"{recipient_env(args.stack, 'deploy')}", file=sys.stderr)
        return 0
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        print(f"error: {KEY_ENV} is empty: add the CI secret {secret_name(args.stack)} (the team's Vast.ai API key) "
              f"to the repository's secrets", file=sys.stderr)
        return 1
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(f"::add-mask::{key}", flush=True)  # the runner hides this line and every later occurrence
    cli = _cli(Path(args.project_dir))
    if args.stack not in {s["name"] for s in cli.json("stack", "ls")}:
        cli.run("stack", "init", args.stack)
    cli.set_secret(API_KEY_CONFIG, key, stack=args.stack)
    print(f"{API_KEY_CONFIG} set (secret) for stack {args.stack}", file=sys.stderr)
    return 0


def _tail(result: subprocess.CompletedProcess[str], lines: int = 30) -> str:
    return "\n".join((result.stdout + "\n" + result.stderr).strip().splitlines()[-lines:])


def run_preview(cli: PulumiCLI, team: str, *, policy_config: Path | None = None,
                stack: str | None = None) -> tuple[PreviewReport, subprocess.CompletedProcess[str]]:
    """`pulumi preview` with the pack and the team's file, judged from its event log (one run, no scraping). A
    stack that takes its keys from the platform previews with the team's preview key."""
    stack = stack or team
    with tempfile.TemporaryDirectory(prefix="vastguard-preview-") as tmp:
        log = Path(tmp) / "events.jsonl"
        result = cli.run("preview", "--event-log", str(log), *_policy_args(team, policy_config), stack=stack,
                         check=False, extra_env={**DEBUG_COMMANDS, **key_env(cli, stack, "preview")})
        events = parse_events(log.read_text()) if log.exists() else []
    return preview_report(team, stack, events, exit_code=result.returncode, stderr_tail=_tail(result)), result


def run_policy_audit(cli: PulumiCLI, team: str, *, policy_config: Path | None = None,
                     stack: str | None = None) -> tuple[PolicyAuditReport, subprocess.CompletedProcess[str]]:
    """`pulumi policy analyze`: the pack against the stack's current state, without running the program.

    It analyzes an export of the state (`--file`) with the secrets passphrase withheld, so the engine redacts the
    stack's secrets instead of decrypting them: analyzing a stack directly (`--stack`) decrypts them, and engine
    3.259 then writes the team's Vast.ai key, base64-encoded, into its *unencrypted* log of the analyze command in
    `$PULUMI_HOME/logs`. No rule reads a secret, so nothing is lost.
    """
    stack = stack or team
    with tempfile.TemporaryDirectory(prefix="vastguard-audit-") as tmp:
        state = Path(tmp) / "state.json"
        exported = cli.run("stack", "export", "--file", str(state), stack=stack, check=False)
        if exported.returncode != 0:
            report = policy_audit_report(team, stack, [], exit_code=exported.returncode, stderr_tail=_tail(exported))
            return report, exported
        result = cli.run("policy", "analyze", "--json", "--file", str(state), *_policy_args(team, policy_config),
                         check=False, drop_env=SECRETS_PASSPHRASE)
    try:
        events = parse_events(result.stdout)
    except EventLogError:
        events = []
    return policy_audit_report(team, stack, events, exit_code=result.returncode, stderr_tail=_tail(result)), result


def stack_policy_config(project_dir: Path, stack: str) -> Path:
    """The pack's config for a stack: policies/platform.json for the platform stack, else the team's file."""
    return PLATFORM_POLICY_CONFIG if is_platform_stack(project_dir, stack) else team_policy_config(stack)


def _policy_config(args: argparse.Namespace) -> Path | None:
    path = Path(args.policy_config) if args.policy_config else stack_policy_config(Path(args.project_dir), args.stack)
    if not path.exists():
        print(f"error: no team policy config {path}: create it with `./dev vastguard team add {args.stack}` and "
              "commit it with the stack", file=sys.stderr)
        return None
    return path


def _preview_command(args: argparse.Namespace) -> int:
    config = _policy_config(args)
    if config is None:
        return 1
    try:
        report, result = run_preview(_cli(Path(args.project_dir)), args.stack, policy_config=config)
    except DeliveryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result.stdout, file=sys.stderr)  # the engine's own account, for the log
    _append_summary(preview_markdown([report]), echo=not args.json)
    if args.json:
        print(to_json(report), end="")
    return 0 if report.verdict in {"passed", "advisory"} else 1


def _audit_command(args: argparse.Namespace) -> int:
    config = _policy_config(args)
    if config is None:
        return 1
    report, result = run_policy_audit(_cli(Path(args.project_dir)), args.stack, policy_config=config)
    print(result.stdout if not report.violations else "", result.stderr, sep="", file=sys.stderr)
    _append_summary(policy_audit_markdown([report]), echo=not args.json)
    if args.json:
        print(to_json(report), end="")
    return 0 if report.verdict in {"passed", "advisory"} else 1


def _up_command(args: argparse.Namespace) -> int:
    root = Path(args.project_dir)
    cli = _cli(root)
    extra = ["--message", args.message] if args.message else []
    try:
        delivered = key_env(cli, args.stack, "up")
    except DeliveryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    result = cli.run("up", "--yes", "--skip-preview", *extra,
                     *_policy_args(args.stack, stack_policy_config(root, args.stack)), stack=args.stack, check=False,
                     extra_env=delivered)
    print(result.stdout, file=sys.stderr)
    print(result.stderr, file=sys.stderr)
    outputs = cli.json("stack", "output", stack=args.stack) if result.returncode == 0 else {}
    _append_summary(deploy_markdown(args.stack, outputs, result.returncode == 0))
    return result.returncode


def register(subparsers: Any) -> None:
    ci = subparsers.add_parser("ci", help="the steps the CI workflows run (changed stacks, keys, preview, up)",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = ci.add_subparsers(dest="ci_command", required=True, metavar="ACTION")

    changed = actions.add_parser("changed", help="team stacks a change touches")
    which = changed.add_mutually_exclusive_group(required=True)
    which.add_argument("--base", help="git ref to compare with (merge base), or - for paths on stdin")
    which.add_argument("--all", action="store_true", help="every team stack")
    changed.add_argument("--head", default="HEAD")
    changed.add_argument("--format", choices=["matrix", "lines"], default="matrix")
    changed.add_argument("--root", type=Path, help="project root (default: this repository)")
    changed.set_defaults(func=_changed_command)

    for name, func, text in (
            ("set-key", _set_key_command, f"store ${KEY_ENV} as the stack's secret {API_KEY_CONFIG}"),
            ("preview", _preview_command, "preview with the team's policy config; verdict and cost change"),
            ("audit", _audit_command, "the pack against the stack's current state (nightly); what no longer complies"),
            ("up", _up_command, "deploy with the team's policy config; job summary")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--stack", required=True, metavar="TEAM")
        action.add_argument("--project-dir", default=str(repo_root()), help="Pulumi project directory")
        if name == "up":
            action.add_argument("--message", help="update message (e.g. the commit)")
        if name in {"preview", "audit"}:
            action.add_argument("--json", action="store_true",
                                help="print the verdict as JSON (schema: vastguard/schemas/ci-report.schema.json); "
                                     "the job summary is still written")
            action.add_argument("--policy-config", metavar="FILE",
                                help="the team's policy file (default: policies/teams/TEAM.json)")
        action.set_defaults(func=func)
