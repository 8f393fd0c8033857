"""What the CI workflows (.github/workflows/) run, kept here so it is tested rather than written as shell.

- `vastguard ci changed --base REF [--head REF] [--repo DIR]` (or `--all`): the team stacks a change touches (a
  team's stack file or policy file: that team; code every stack runs, or the policy pack itself: every team), as
  a JSON matrix for GitHub Actions with, per team, the *names* of the CI secrets its jobs may read
  (`preview_secret`, `deploy_secret`, `passphrase`, the bucket credentials, `secret` for a team's own key); also
  written to $GITHUB_OUTPUT as `matrix`, `any`, `platform_review` and `platform_paths` (platform-owned files the
  change touches). The teams are the trusted tree's (`--root`); `--repo` is the git checkout holding both commits.
- `vastguard ci platform-review --base SHA --head SHA`: the job summary listing those platform-owned files.
- `vastguard ci set-key --stack TEAM`: put the team's Vast.ai key from the environment (`VASTAI_API_KEY`,
  filled from the CI secret `VASTGUARD_KEY_<TEAM>`) into the stack's config as a secret: the value goes to
  `pulumi config set --secret` on stdin, never in argv, and is masked in the GitHub log before anything runs.
- `vastguard ci preview --stack TEAM [--pr-checkout DIR] [--json]`: `pulumi preview` with the policy pack and
  the team's config, judged from the engine's event log (`--event-log`): the verdict, each violation, the cost
  change (before -> after, unknown never shown as $0), which rules judged (commit) and which kind of key was used
  go to the job summary, and with `--json` to stdout as a versioned document
  (vastguard/schemas/ci-report.schema.json); exits 1 when denied or failed. With `--pr-checkout` the trusted tree
  (this checkout: the base) judges the PR's stack file's fleet, and nothing else of the PR is read
  (vastguard/rules_from.py).
- `vastguard ci audit --stack TEAM [--json]`: the nightly check of what already runs: `pulumi policy analyze`
  runs the pack against the stack's current state, so an exception that expired or a limit lowered since the
  last deploy is reported the next morning; exits 1 on a mandatory finding.
- `vastguard ci refresh --stack TEAM`: `pulumi refresh` with the team's read-only preview key (refresh only reads).
- `vastguard ci up --stack TEAM`: `pulumi up` with the same pack and config; appends the deployed cost.

A team stack that takes its keys from the platform stack (`vastguard:keyFrom`) previews (and refreshes) with its
preview key and deploys with its deploy key, opened from the platform's envelopes (vastguard/keys.py), with the
job's recipient secret: `VASTGUARD_PREVIEW_SECRET_<TEAM>`, or `VASTGUARD_PREVIEW_SECRET` (a workflow cannot name a
variable after its matrix's team; likewise `VASTGUARD_DEPLOY_SECRET` for `up`). `set-key` has nothing to set for
it. Every command runs the engine with a PULUMI_HOME of its own, removed when it ends (the engine's log holds
decrypted secrets). `--stack platform` (the stack declaring `vastguard:platform`) is judged by
policies/platform.json; `changed` lists team stacks only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine import ensure, repo_root
from fleet.access_fields import recipient_env
from fleet.platform_declaration import KEY_FROM_CONFIG
from fleet.stack_config import API_KEY_CONFIG
from vastguard.engine_events import EventLogError, parse_events
from vastguard.keys import (
    COMMAND_KINDS,
    DeliveryError,
    delivered_env,
    is_platform_stack,
    job_secret_env,
    key_source,
    stack_config,
)
from vastguard.pulumi_cli import PulumiCLI
from vastguard.rules_from import RulesError, judged_project, rules_commit
from vastguard.summary import deploy_markdown, policy_audit_markdown, preview_markdown, to_json
from vastguard.verdict import KeyUsed, PolicyAuditReport, PreviewReport, Rules, policy_audit_report, preview_report
from vastguard.workspace import PLATFORM_POLICY_CONFIG, POLICY_PACK, team_policy_config

KEY_ENV = "VASTAI_API_KEY"
DEBUG_COMMANDS = {"PULUMI_DEBUG_COMMANDS": "true"}  # engine 3.259 offers --event-log only behind this switch
SECRETS_PASSPHRASE = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
# Paths whose change can alter every team's preview: the program, its libraries, the pack, the toolchain.
SHARED_PREFIXES = ("program/", "fleet/", "providers/", "vastclient/", "policies/", "engine/")
SHARED_FILES = frozenset({"__main__.py", "Pulumi.yaml", "pyproject.toml", "requirements.lock"})
# What judges a pull request and what runs in CI: never taken from the PR's checkout (the base's is used).
PLATFORM_PREFIXES = (*SHARED_PREFIXES, "vastguard/", "reports/", ".github/", ".ci/")
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


def passphrase_name(team: str) -> str:
    """The CI secret holding the passphrase of the team's own stack (each team stack encrypts with its own)."""
    return "VASTGUARD_PASSPHRASE_" + _env_suffix(team)


def aws_secret_names(team: str) -> dict[str, str]:
    """The CI secrets of the state-bucket credentials confined to the team's own stacks (README: the bucket
    policy)."""
    return {"aws_access_key_id": "VASTGUARD_AWS_ACCESS_KEY_ID_" + _env_suffix(team),
            "aws_secret_access_key": "VASTGUARD_AWS_SECRET_ACCESS_KEY_" + _env_suffix(team)}


def _env_suffix(team: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", team.upper())


def matrix(teams: Sequence[str]) -> dict[str, Any]:
    """One entry per team with the *names* of the CI secrets its jobs may read (`secrets[matrix.<field>]`): a
    preview job reads `preview_secret`, a deploy job (in the team's GitHub environment) `deploy_secret`; both the
    team's own `passphrase` and bucket credentials; `secret` is a team's own key (teams without `keyFrom`)."""
    return {"include": [{"team": t, "secret": secret_name(t), "preview_secret": recipient_env(t, "preview"),
                         "deploy_secret": recipient_env(t, "deploy"), "passphrase": passphrase_name(t),
                         **aws_secret_names(t)} for t in teams]}


def platform_paths(paths: Iterable[str]) -> list[str]:
    """The changed paths the platform team owns (CODEOWNERS): everything that is not a team's stack file. A pull
    request's preview never runs them (it runs the base's), so they need the platform team's review."""
    out = []
    for path in (p.strip() for p in paths):
        if not path or ((m := _STACK_FILE.match(path)) and m[1] != "platform"):
            continue
        if (path in SHARED_FILES or path.startswith(PLATFORM_PREFIXES) or path == "dev"
                or path == "stacks/Pulumi.platform.yaml"):
            out.append(path)
    return out


# --- commands -------------------------------------------------------------------------------------------------


def _append_summary(markdown: str, *, echo: bool = True) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    if echo:
        print(markdown)


@contextmanager
def job_pulumi_home() -> Iterator[Path]:
    """A PULUMI_HOME of the command's own, removed when it ends, whatever happens: engine 3.259 writes a debug log
    of every command to `$PULUMI_HOME/logs` that holds the stack's decrypted secrets (README: "Pulumi's own logs
    hold the key"), and a runner's home outlives the job (caches, self-hosted runners)."""
    home = Path(tempfile.mkdtemp(prefix="vastguard-pulumi-home-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def _cli(project_dir: Path) -> Iterator[PulumiCLI]:
    with job_pulumi_home() as home:
        yield PulumiCLI.for_project(ensure(log=lambda line: print(line, file=sys.stderr)), project_dir,
                                    extra_env={"PULUMI_HOME": str(home)})


def _policy_args(team: str, policy_config: Path | None = None) -> list[str]:
    """This repository's pack and the team's file in it (the pack is platform-owned, not per project dir)."""
    config = policy_config or team_policy_config(team)
    return ["--policy-pack", str(POLICY_PACK), "--policy-pack-config", str(config)]


def key_env(cli: PulumiCLI, stack: str, command: str) -> dict[str, str]:
    """The key `pulumi <command>` of `stack` needs, when the stack takes its keys from the platform stack. The
    job's secret for the command's kind of key (and only that kind) may be given under its team-less name."""
    env = cli.env
    kind = COMMAND_KINDS.get(command)
    source = key_source(cli.cwd, stack)
    if kind is not None and source is not None:
        name, generic = recipient_env(source.team, kind), job_secret_env(kind)
        if not env.get(name) and env.get(generic):
            env = {**env, name: env[generic]}
    return delivered_env([command, "--stack", stack], project_dir=cli.cwd, env=env, stack_lookup=lambda: stack,
                         cli_runner=lambda *args, stack=None: cli.run(*args, stack=stack).stdout)


_JOB_SECRET = re.compile(r"^VASTGUARD_((PREVIEW|DEPLOY)_SECRET(_[A-Z0-9_]+)?|PASSPHRASE_[A-Z0-9_]+)$")


def child_drop(cli: PulumiCLI, stack: str) -> list[str]:
    """The job's secrets the `pulumi` child of a team stack never needs (vastguard opened the key already): the
    recipient secrets and the per-team passphrase secrets. The platform stack's child keeps the recipient
    secrets: its `vastai:ApiKey` resources seal the envelopes with them."""
    if is_platform_stack(cli.cwd, stack):
        return []
    return [name for name in cli.env if _JOB_SECRET.match(name)]


def key_used(project_dir: Path, stack: str, command: str) -> KeyUsed:
    """Which kind of Vast key `pulumi <command>` of `stack` runs with (for the job summary)."""
    if key_source(project_dir, stack) is not None:
        return COMMAND_KINDS.get(command) or "none"
    return "own" if API_KEY_CONFIG in stack_config(project_dir, stack) else "none"


def _diff(base: str | None, head: str, repo: Path, stdin: Iterable[str]) -> list[str] | None:
    """The paths a change touches; None for everything (no base, or a base of zeros: a push creating a branch)."""
    if base is None or re.fullmatch(r"0*", base):
        return None
    return list(stdin) if base == "-" else git_changed_paths(base, head, cwd=repo)


def select_teams(base: str | None, head: str, root: Path, stdin: Iterable[str] = (), *,
                 repo: Path | None = None) -> list[str]:
    """All teams without a base or for a base of zeros (a push that created the branch); else the changed ones.
    `root` is the trusted tree (its stacks are the teams); `repo` the git repository holding both commits."""
    teams = known_teams(root)
    paths = _diff(base, head, repo or root, stdin)
    return teams if paths is None else changed_teams(paths, teams)


def github_outputs(teams: Sequence[str], platform: Sequence[str] = ()) -> str:
    """Lines for $GITHUB_OUTPUT: `matrix` (for strategy.matrix), `any` (to skip the job when empty), and
    `platform_review` / `platform_paths` (platform-owned files the change touches)."""
    return (f"matrix={json.dumps(matrix(teams))}\nany={'true' if teams else 'false'}\n"
            f"platform_review={'true' if platform else 'false'}\nplatform_paths={json.dumps(list(platform))}\n")


def platform_review_markdown(paths: Sequence[str], *, base: str) -> str:
    out = ["## vastguard platform review", "",
           f"This change touches files the platform team owns (CODEOWNERS). The team previews of this pull request "
           f"ran the base's rules, program and tooling (commit {base}), not these; they take effect only after "
           "the platform team's review and merge.", ""]
    out += [f"- `{p}`" for p in paths] or ["- (none)"]
    return "\n".join(out) + "\n"


def _changed_command(args: argparse.Namespace) -> int:
    root = Path(args.root or repo_root())
    stdin = sys.stdin.read().splitlines() if args.base == "-" else []
    repo = Path(args.repo) if args.repo else root
    paths = _diff(None if args.all else args.base, args.head, repo, stdin)
    teams = known_teams(root) if paths is None else changed_teams(paths, known_teams(root))
    platform = [] if paths is None else platform_paths(paths)
    print(json.dumps(matrix(teams)) if args.format == "matrix" else "\n".join(teams))
    if target := os.environ.get("GITHUB_OUTPUT"):
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(github_outputs(teams, platform))
    return 0


def _platform_review_command(args: argparse.Namespace) -> int:
    root = Path(args.root or repo_root())
    paths = platform_paths(git_changed_paths(args.base, args.head, cwd=Path(args.repo) if args.repo else root))
    _append_summary(platform_review_markdown(paths, base=args.base))
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
    with _cli(Path(args.project_dir)) as cli:
        if args.stack not in {s["name"] for s in cli.json("stack", "ls")}:
            cli.run("stack", "init", args.stack)
        cli.set_secret(API_KEY_CONFIG, key, stack=args.stack)
    print(f"{API_KEY_CONFIG} set (secret) for stack {args.stack}", file=sys.stderr)
    return 0


def _tail(result: subprocess.CompletedProcess[str], lines: int = 30) -> str:
    return "\n".join((result.stdout + "\n" + result.stderr).strip().splitlines()[-lines:])


def run_preview(cli: PulumiCLI, team: str, *, policy_config: Path | None = None, stack: str | None = None,
                rules: Rules | None = None) -> tuple[PreviewReport, subprocess.CompletedProcess[str]]:
    """`pulumi preview` with the pack and the team's file, judged from its event log (one run, no scraping). A
    stack that takes its keys from the platform previews with the team's preview key."""
    stack = stack or team
    with tempfile.TemporaryDirectory(prefix="vastguard-preview-") as tmp:
        log = Path(tmp) / "events.jsonl"
        result = cli.run("preview", "--event-log", str(log), *_policy_args(team, policy_config), stack=stack,
                         check=False, extra_env={**DEBUG_COMMANDS, **key_env(cli, stack, "preview")},
                         drop_env=child_drop(cli, stack))
        events = parse_events(log.read_text()) if log.exists() else []
    report = preview_report(team, stack, events, exit_code=result.returncode, stderr_tail=_tail(result))
    if rules is None:  # the pack and team files are this vastguard's own (POLICY_PACK), whatever the project dir
        rules = Rules(source="checkout", commit=rules_commit(POLICY_PACK.parent))
    report = report.model_copy(update={"rules": rules, "key": key_used(cli.cwd, stack, "preview")})
    return report, result


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
    project_dir = Path(args.project_dir)
    if args.pr_checkout and Path(config).resolve().is_relative_to(Path(args.pr_checkout).resolve()):
        print(f"error: --policy-config {config} is inside the pull request's checkout: the rules that judge a pull "
              "request come from the trusted tree; drop --policy-config", file=sys.stderr)
        return 1
    if args.rules_commit and not re.fullmatch(r"[0-9a-f]{7,64}", args.rules_commit):
        print(f"error: --rules-commit {args.rules_commit!r} is not a commit sha (7 to 64 lower-case hex digits); in "
              "the workflow pass github.event.pull_request.base.sha", file=sys.stderr)
        return 1
    commit = args.rules_commit or rules_commit(POLICY_PACK.parent)
    try:
        with tempfile.TemporaryDirectory(prefix="vastguard-judged-") as tmp, _cli(project_dir) as cli:
            rules = Rules(source="checkout", commit=commit)
            if args.pr_checkout:
                # The trusted tree (this checkout: the base) judges; the PR gives only its stack's fleet.
                cli.cwd = judged_project(project_dir, Path(args.pr_checkout), args.stack, Path(tmp) / "project")
                rules = Rules(source="base", commit=commit)
            report, result = run_preview(cli, args.stack, policy_config=config, rules=rules)
    except (DeliveryError, RulesError) as err:
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
    with _cli(Path(args.project_dir)) as cli:
        report, result = run_policy_audit(cli, args.stack, policy_config=config)
    print(result.stdout if not report.violations else "", result.stderr, sep="", file=sys.stderr)
    _append_summary(policy_audit_markdown([report]), echo=not args.json)
    if args.json:
        print(to_json(report), end="")
    return 0 if report.verdict in {"passed", "advisory"} else 1


def _up_command(args: argparse.Namespace) -> int:
    root = Path(args.project_dir)
    extra = ["--message", args.message] if args.message else []
    with _cli(root) as cli:
        try:
            delivered = key_env(cli, args.stack, "up")
        except DeliveryError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        result = cli.run("up", "--yes", "--skip-preview", *extra,
                         *_policy_args(args.stack, stack_policy_config(root, args.stack)), stack=args.stack,
                         check=False, extra_env=delivered, drop_env=child_drop(cli, args.stack))
        print(result.stdout, file=sys.stderr)
        print(result.stderr, file=sys.stderr)
        outputs = cli.json("stack", "output", stack=args.stack) if result.returncode == 0 else {}
    _append_summary(deploy_markdown(args.stack, outputs, result.returncode == 0, key=key_used(root, args.stack, "up"),
                                    commit=rules_commit(POLICY_PACK.parent)))
    return result.returncode


def _refresh_command(args: argparse.Namespace) -> int:
    """`pulumi refresh` only reads Vast, so the nightly job runs it with the team's read-only preview key."""
    with _cli(Path(args.project_dir)) as cli:
        try:
            delivered = key_env(cli, args.stack, "preview")
        except DeliveryError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        result = cli.run("refresh", "--yes", "--skip-preview", stack=args.stack, check=False, extra_env=delivered,
                         drop_env=child_drop(cli, args.stack))
    print(result.stdout, file=sys.stderr)
    print(result.stderr, file=sys.stderr)
    return result.returncode


def _bucket_policy_command(args: argparse.Namespace) -> int:
    from vastguard.bucket_policy import bucket_policy
    from vastguard.keys import project_name

    root = Path(args.root or repo_root())
    if "{team}" not in args.role_arn:
        print("error: --role-arn must contain {team}, e.g. arn:aws:iam::123456789012:role/vastguard-ci-{team}: "
              "each team's jobs assume a role of their own", file=sys.stderr)
        return 1
    roles = {team: args.role_arn.replace("{team}", team) for team in known_teams(root)}
    policy = bucket_policy(args.bucket, args.project or project_name(root), roles, platform_role=args.platform_role)
    print(json.dumps(policy, indent=2))
    return 0


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
    changed.add_argument("--root", type=Path, help="the trusted tree whose stacks are the teams (default: this "
                                                   "repository)")
    changed.add_argument("--repo", type=Path, help="the git repository holding both commits (default: --root), e.g. "
                                                   "the pull request's checkout")
    changed.set_defaults(func=_changed_command)

    policy = actions.add_parser("bucket-policy", help="the S3 bucket policy confining each team's CI role to its "
                                                      "own stacks (JSON)")
    policy.add_argument("--bucket", required=True)
    policy.add_argument("--role-arn", required=True, metavar="ARN",
                        help="each team's CI role, with {team} for the team: arn:aws:iam::ACCOUNT:role/ci-{team}")
    policy.add_argument("--platform-role", metavar="ARN", help="the platform job's role (its stack, read of all)")
    policy.add_argument("--project", help="the Pulumi project (default: Pulumi.yaml's name)")
    policy.add_argument("--root", type=Path, help="project root (default: this repository)")
    policy.set_defaults(func=_bucket_policy_command)

    review = actions.add_parser("platform-review", help="job summary of the platform-owned files a change touches")
    review.add_argument("--base", required=True, help="the base commit")
    review.add_argument("--head", default="HEAD")
    review.add_argument("--root", type=Path, help="project root (default: this repository)")
    review.add_argument("--repo", type=Path, help="the git repository holding both commits (default: --root)")
    review.set_defaults(func=_platform_review_command)

    for name, func, text in (
            ("set-key", _set_key_command, f"store ${KEY_ENV} as the stack's secret {API_KEY_CONFIG}"),
            ("preview", _preview_command, "preview with the team's policy config; verdict and cost change"),
            ("audit", _audit_command, "the pack against the stack's current state (nightly); what no longer complies"),
            ("refresh", _refresh_command, "refresh the stack's state from Vast with the read-only preview key"),
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
        if name == "preview":
            action.add_argument("--pr-checkout", metavar="DIR",
                                help="a pull request's checkout: preview its stacks/Pulumi.TEAM.yaml fleet with this "
                                     "tree's program, pack and team files (the base's rules)")
            action.add_argument("--rules-commit", metavar="SHA",
                                help="the commit whose rules judge (default: git rev-parse HEAD of --project-dir)")
        action.set_defaults(func=func)
