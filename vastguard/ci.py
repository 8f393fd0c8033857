"""What the CI workflows (.github/workflows/) run, kept here so it is tested rather than written as shell.

- `vastguard ci changed --base REF` (or `--all`): the team stacks a change touches (a team's stack file or
  policy file: that team; code every stack runs, or the policy pack itself: every team), as a JSON matrix for
  GitHub Actions (also written to $GITHUB_OUTPUT as `matrix` and `any`).
- `vastguard ci set-key --stack TEAM`: put the team's Vast.ai key from the environment (`VASTAI_API_KEY`,
  filled from the CI secret `VASTGUARD_KEY_<TEAM>`) into the stack's config as a secret: the value goes to
  `pulumi config set --secret` on stdin, never in argv, and is masked in the GitHub log before anything runs.
- `vastguard ci preview --stack TEAM`: `pulumi preview` with the policy pack and the team's config; appends the
  verdict, the policy report and the cost change (before -> after) to the job summary; exits 1 when denied.
- `vastguard ci up --stack TEAM`: `pulumi up` with the same pack and config; appends the deployed cost.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine import ensure, repo_root
from fleet.costs import FleetCost, cents, fleet_cost
from vastguard.pulumi_cli import PulumiCLI
from vastguard.workspace import POLICY_PACK, team_policy_config

KEY_ENV = "VASTAI_API_KEY"
INSTANCE_TYPE = "vastai:Instance"
# Paths whose change can alter every team's preview: the program, its libraries, the pack, the toolchain.
SHARED_PREFIXES = ("program/", "fleet/", "providers/", "vastclient/", "policies/", "engine/")
SHARED_FILES = frozenset({"__main__.py", "Pulumi.yaml", "pyproject.toml", "requirements.lock"})
_STACK_FILE = re.compile(r"^stacks/Pulumi\.([A-Za-z0-9_.-]+)\.yaml$")
_TEAM_FILE = re.compile(r"^policies/teams/([A-Za-z0-9_.-]+)\.json$")
_GONE = frozenset({"delete", "discard", "delete-replaced", "read-discard", "remove-pending-replace"})
_NEW = frozenset({"create", "create-replacement", "replace", "import", "import-replacement"})


def secret_name(team: str) -> str:
    """The CI secret holding a team's Vast.ai key; the same name `vastguard reconcile` reads from the env."""
    return "VASTGUARD_KEY_" + re.sub(r"[^A-Z0-9]", "_", team.upper())


def known_teams(root: Path) -> list[str]:
    return sorted(m[1] for p in (root / "stacks").glob("Pulumi.*.yaml") if (m := _STACK_FILE.match(f"stacks/{p.name}")))


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
        elif path == "policies/teams/_template.json":
            continue
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


# --- preview results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    level: str  # mandatory, advisory, disabled
    policy: str
    message: str


@dataclass
class PreviewResult:
    team: str
    ok: bool
    before: FleetCost
    after: FleetCost
    changes: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    error: str = ""

    @property
    def verdict(self) -> str:
        if any(v.level == "mandatory" for v in self.violations):
            return "denied by policy"
        if not self.ok:
            return "preview failed"
        if self.violations:
            return "passed with advisories"
        return "passed"


def _is_instance(step: Mapping[str, Any]) -> bool:
    state = step.get("newState") or step.get("oldState") or {}
    return str(state.get("type", "")).endswith(INSTANCE_TYPE)


def cost_change(preview: Mapping[str, Any], outputs: Mapping[str, Any]) -> tuple[FleetCost, FleetCost]:
    """The fleet's estimated cost before and after a previewed change.

    `outputs` are the stack's current outputs (`pulumi stack output --json`; empty for a new stack): its `fleet`
    is every rented instance with its actual $/h. `preview` is `pulumi preview --json`, which lists only what
    changes. After = the current fleet, less removed instances, with updated ones in their new state, plus new
    and replacing ones at their quote (taken at check) -- the basis the policy pack's budgets use.
    """
    current: dict[str, Mapping[str, Any]] = {str(k): v for k, v in (outputs.get("fleet") or {}).items()
                                             if isinstance(v, Mapping)}
    after = dict(current)
    for step in preview.get("steps") or []:
        if not _is_instance(step):
            continue
        name, op = str(step.get("urn")).rsplit("::", 1)[-1], str(step.get("op"))
        inputs = dict((step.get("newState") or {}).get("inputs") or {})
        if op in _GONE:
            if op != "delete-replaced":  # a replacement is listed under the same name and stays
                after.pop(name, None)
        elif op in _NEW:
            after[name] = inputs
        else:  # update, same, refresh: the rented instance, with what the new inputs change
            merged = dict(current.get(name) or (step.get("oldState") or {}).get("outputs") or {})
            merged.update({k: inputs[k] for k in ("state", "disk_gb") if k in inputs})
            after[name] = merged
    return fleet_cost(current.values()), fleet_cost(after.values())


def instance_changes(preview: Mapping[str, Any]) -> dict[str, int]:
    """Instance steps by operation (pulumi's changeSummary also counts the stack itself)."""
    counts: dict[str, int] = {}
    for step in preview.get("steps") or []:
        if _is_instance(step) and step.get("op") != "delete-replaced":
            counts[str(step.get("op"))] = counts.get(str(step.get("op")), 0) + 1
    return counts


def parse_policy_report(text: str) -> list[Violation]:
    """The violations in the `Policies:` section of pulumi's text output (its JSON output leaves them out)."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Policies:")
    except StopIteration:
        return []
    found: list[Violation] = []
    head = re.compile(r"^\s*- \[(\w+)\]\s+(\S+)")
    current: tuple[str, str] | None = None
    body: list[str] = []

    def flush() -> None:
        if current:
            # The first body line is the policy's description, the rest its message for this stack.
            message = " ".join(body[1:] if len(body) > 1 else body).strip()
            found.append(Violation(current[0], current[1], message))

    for line in lines[start + 1:]:
        if not line.strip():
            break
        if m := head.match(line):
            flush()
            current, body = (m[1], m[2]), []
        elif current and line.startswith("          "):
            body.append(line.strip())
    flush()
    return found


def _money(value: Decimal) -> str:
    return f"${cents(value):,.2f}"


def _delta(before: Decimal, after: Decimal) -> str:
    diff = cents(after) - cents(before)
    return f"{'-' if diff < 0 else '+'}${abs(diff):,.2f}"


def render_preview_summary(results: Sequence[PreviewResult]) -> str:
    icon = {"passed": "✅", "passed with advisories": "⚠️", "denied by policy": "❌", "preview failed": "❌"}
    out = ["## vastguard preview", "",
           "| team | verdict | changes | $/h before -> after | $/day before -> after | $/month before -> after |",
           "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        changes = ", ".join(f"{n} {op}" for op, n in sorted(r.changes.items()) if op != "same") or "none"
        cols = [f"{_money(getattr(r.before, p))} -> {_money(getattr(r.after, p))} "
                f"({_delta(getattr(r.before, p), getattr(r.after, p))})" for p in ("hourly", "daily", "monthly")]
        out.append(f"| {r.team} | {icon[r.verdict]} {r.verdict} | {changes} | " + " | ".join(cols) + " |")
    for r in results:
        if r.violations:
            out += ["", f"### {r.team}: policy report", ""]
            out += [f"- **[{v.level}] {v.policy}**: {v.message}" for v in r.violations]
        if r.error and not r.ok and not r.violations:
            out += ["", f"### {r.team}: preview failed", "", "```", r.error, "```"]
    return "\n".join(out) + "\n"


def render_deploy_summary(team: str, outputs: Mapping[str, Any], ok: bool) -> str:
    cost = outputs.get("estimated_cost") or {}
    fleet = outputs.get("fleet") or {}
    status = "✅ deployed" if ok else "❌ `pulumi up` failed (see the log)"
    money = " | ".join(f"${float(cost.get(p, 0)):,.2f}" for p in ("hourly", "daily", "monthly"))
    return ("## vastguard deploy\n\n| team | result | instances | $/h | $/day | $/month |\n"
            "| --- | --- | --- | --- | --- | --- |\n"
            f"| {team} | {status} | {len(fleet)} | {money} |\n")


# --- commands -------------------------------------------------------------------------------------------------


def _append_summary(markdown: str) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    print(markdown)


def _cli(project_dir: Path) -> PulumiCLI:
    return PulumiCLI.for_project(ensure(log=lambda line: print(line, file=sys.stderr)), project_dir)


def _policy_args(team: str) -> list[str]:
    """This repository's pack and the team's file in it (the pack is platform-owned, not per project dir)."""
    return ["--policy-pack", str(POLICY_PACK), "--policy-pack-config", str(team_policy_config(team))]


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
    cli.set_secret("vastai:apiKey", key, stack=args.stack)
    print(f"vastai:apiKey set (secret) for stack {args.stack}", file=sys.stderr)
    return 0


def _preview_command(args: argparse.Namespace) -> int:
    if not team_policy_config(args.stack).exists():
        print(f"error: no team policy config {team_policy_config(args.stack)}: create it with "
              f"`./dev vastguard team add {args.stack}` and commit it with the stack", file=sys.stderr)
        return 1
    root = Path(args.project_dir)
    cli = _cli(root)
    policy = _policy_args(args.stack)
    as_json = cli.run("preview", "--json", *policy, stack=args.stack, check=False)
    as_text = cli.run("preview", *policy, stack=args.stack, check=False)
    try:
        data = json.loads(as_json.stdout)
    except json.JSONDecodeError:
        data = {}
    shown = cli.run("stack", "output", "--json", stack=args.stack, check=False)
    outputs = json.loads(shown.stdout) if shown.returncode == 0 and shown.stdout.strip() else {}
    before, after = cost_change(data, outputs)
    result = PreviewResult(
        team=args.stack, ok=as_json.returncode == 0 and as_text.returncode == 0, before=before, after=after,
        changes=instance_changes(data),
        violations=parse_policy_report(as_text.stdout),
        error="\n".join((as_text.stdout + "\n" + as_text.stderr).strip().splitlines()[-30:]),
    )
    print(as_text.stdout, file=sys.stderr)
    _append_summary(render_preview_summary([result]))
    return 0 if result.ok else 1


def _up_command(args: argparse.Namespace) -> int:
    root = Path(args.project_dir)
    cli = _cli(root)
    extra = ["--message", args.message] if args.message else []
    result = cli.run("up", "--yes", "--skip-preview", *extra, *_policy_args(args.stack), stack=args.stack,
                     check=False)
    print(result.stdout, file=sys.stderr)
    print(result.stderr, file=sys.stderr)
    outputs = cli.json("stack", "output", stack=args.stack) if result.returncode == 0 else {}
    _append_summary(render_deploy_summary(args.stack, outputs, result.returncode == 0))
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

    for name, func, text in (("set-key", _set_key_command, f"store ${KEY_ENV} as the stack's secret vastai:apiKey"),
                             ("preview", _preview_command, "preview with the team's policy config; job summary"),
                             ("up", _up_command, "deploy with the team's policy config; job summary")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--stack", required=True, metavar="TEAM")
        action.add_argument("--project-dir", default=str(repo_root()), help="Pulumi project directory")
        if name == "up":
            action.add_argument("--message", help="update message (e.g. the commit)")
        action.set_defaults(func=func)
