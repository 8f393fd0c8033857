"""`vastguard demo`: the whole journey on embedded defaults, with no account and no network.

It starts the local Vast.ai emulator, gives each of the three seed teams its own emulated account and key,
copies the project into `.demo/` (so the committed stack files stay untouched) with a local file state backend
in `.demo/state`, and then walks through what a platform team and its ML teams do: preview each team's fleet
with the policy pack (estimated cost and verdict), deploy the compliant ones, try a change the policy blocks
(and show nothing was rented), read the audit trail and spend report from stack history, and clean up.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from emulator import Account, EmulatorServer
from engine import ensure, repo_root
from vastguard.ci import cost_change
from vastguard.workspace import Workspace, team_policy_config

TEAMS = ("ml-research", "ml-engineering", "data-science")
DEMO_DIR = repo_root() / ".demo"
BLOCKED_CHANGE: dict[str, Any] = {
    "gpu": "H100_SXM", "count": 1, "image": "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime", "disk_gb": 64,
    "max_dph": 3.5,
}


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the end-to-end journey against the local Vast.ai emulator")
    demo.add_argument("--keep", action="store_true",
                      help="leave the deployed stacks in .demo/ (the emulator still stops at the end)")
    demo.add_argument("--provision-delay", type=float, default=2.0, metavar="SECONDS",
                      help="how long emulated instances take to boot (default 2)")
    demo.set_defaults(func=run)


class Journey:
    def __init__(self, console: Console, ws: Workspace, emulator: EmulatorServer, accounts: dict[str, Account]):
        self.console = console
        self.ws = ws
        self.emulator = emulator
        self.accounts = accounts
        self.step_no = 0

    def step(self, title: str, why: str) -> None:
        self.step_no += 1
        self.console.rule(f"[bold]{self.step_no}. {title}")
        self.console.print(f"[dim]{why}[/dim]")

    def live(self, team: str) -> int:
        return len(self.emulator.market.all_instances(self.accounts[team])[0])

    def policy_lines(self, output: str) -> list[str]:
        """The pack's verdict lines from pulumi's output: the `Policies:` block, without the noise."""
        lines = output.splitlines()
        if "Policies:" not in lines and not any(line.strip() == "Policies:" for line in lines):
            return []
        start = next(i for i, line in enumerate(lines) if line.strip() == "Policies:")
        block = []
        for line in lines[start + 1:]:
            if re.match(r"^\S", line):  # the next top-level section
                break
            if line.strip():
                block.append(line.rstrip())
        return block

    def preview(self, team: str) -> bool:
        result = self.ws.preview(team)
        for line in self.policy_lines(result.stdout + result.stderr):
            self.console.print(f"    {line.strip()}", markup=False, highlight=False)
        verdict = "[green]passes its team's policy[/green]" if result.returncode == 0 else "[red]DENIED[/red]"
        self.console.print(f"  {team}: {verdict}")
        self.estimate(team)
        return result.returncode == 0

    def estimate(self, team: str) -> None:
        """The fleet's estimated spend before and after the change, from live quotes (as CI's summary shows)."""
        preview = self.ws.cli.run("preview", "--json", stack=team, check=False)
        shown = self.ws.cli.run("stack", "output", "--json", stack=team, check=False)
        try:
            data = json.loads(preview.stdout)
            outputs = json.loads(shown.stdout) if shown.returncode == 0 and shown.stdout.strip() else {}
        except json.JSONDecodeError:
            return
        before, after = cost_change(data, outputs)
        budget = _limits(team)["daily_budget"]
        self.console.print(f"  estimated spend: ${before.daily:.2f}/day now -> ${after.daily:.2f}/day after "
                           f"(${after.hourly:.2f}/h; daily budget ${budget})")

    def fleet_table(self, team: str) -> None:
        outputs = self.ws.outputs(team)
        table = Table(title=f"{team}: deployed fleet", show_lines=False)
        for column in ("instance", "GPU", "state", "Vast id", "$/h", "ssh"):
            table.add_column(column)
        for name, inst in sorted(outputs.get("fleet", {}).items()):
            ssh = f"{inst.get('ssh_host')}:{inst.get('ssh_port')}" if inst.get("ssh_host") else "-"
            table.add_row(name, f"{inst['num_gpus']}x {inst['quote']['gpu_name']}", inst.get("status") or "-",
                          str(inst.get("instance_id")), f"{inst.get('dph_total') or 0:.3f}", ssh)
        self.console.print(table)
        cost = outputs.get("estimated_cost", {})
        limits = _limits(team)
        self.console.print(
            f"  estimated spend: ${cost.get('hourly', 0):.2f}/h, ${cost.get('daily', 0):.2f}/day "
            f"(budget ${limits['daily_budget']}/day), ${cost.get('monthly', 0):.2f}/month"
        )


def _limits(team: str) -> dict[str, Any]:
    data = json.loads(team_policy_config(team).read_text())
    return {"daily_budget": data["vast-daily-budget"]["daily_budget"]}


def _vastguard(args: list[str]) -> int:
    from vastguard.cli import main

    return main(args)


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    console.print(Panel.fit(
        "vastguard demo: three ML teams rent GPUs on a local Vast.ai emulator, governed by a Pulumi policy pack.\n"
        "Nothing here needs an account or the network; state lives in .demo/ and is removed at the end.",
        title="vastguard"))
    engine = ensure(log=lambda line: console.print(f"[dim]{line}[/dim]"))
    console.print(f"[dim]Pulumi engine v{engine.version} ({engine.source}): {engine.bin_dir}[/dim]")

    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    state_dir = DEMO_DIR / "state"
    emulator = EmulatorServer(port=0, seed=2026, provision_delay=args.provision_delay,
                              state_file=DEMO_DIR / "emulator-state.json")
    with emulator:
        accounts: dict[str, Account] = {}
        keys: dict[str, str] = {}
        for team in TEAMS:
            keys[team] = secrets.token_urlsafe(24)
            accounts[team] = emulator.create_account(api_key=keys[team], balance=500, username=team)
        ws = Workspace.create(engine, DEMO_DIR / "workspace", state_dir=state_dir)
        journey = Journey(console, ws, emulator, accounts)
        try:
            result = _journey(journey, keys, args, state_dir)
        except subprocess.CalledProcessError as err:
            console.print(f"[red]a step failed:[/red] {err}")
            result = 1
        finally:
            if not args.keep:
                _cleanup(journey)
    # Only now: the emulator writes its state file one last time as it stops.
    if not args.keep:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
    return result


def _journey(j: Journey, keys: dict[str, str], args: argparse.Namespace, state_dir: Path) -> int:
    c = j.console
    j.step("Set up one stack per team",
           f"Each team's stack (stacks/Pulumi.<team>.yaml) gets its own Vast.ai key as an encrypted Pulumi secret; "
           f"the emulator runs at {j.emulator.url}.")
    for team in TEAMS:
        j.ws.init_team(team, api_key=keys[team], vast_url=j.emulator.url)
        c.print(f"  {team}: stack ready; key stored with `pulumi config set --secret vastai:apiKey` (encrypted)")

    j.step("Preview every team's fleet with the policy pack",
           "CI runs this on each pull request: live market quotes, estimated spend against the team's budget, "
           "and the policy verdict, before anything is rented.")
    passed = [team for team in TEAMS if j.preview(team)]

    j.step("Deploy the compliant fleets", "CI runs `pulumi up` with the same pack on merge.")
    for team in passed:
        j.ws.up(team, message=f"demo: deploy {team} fleet")
        j.fleet_table(team)

    j.step("A change the policy blocks",
           "data-science asks for an H100, which is not on its allow-list and far above its $0.30/h cap.")
    fleet = j.ws.fleet("data-science")
    before = j.live("data-science")
    j.ws.set_fleet("data-science", {**fleet, "training": BLOCKED_CHANGE})
    blocked = not j.preview("data-science")
    refused = j.ws.up("data-science", check=False, message="demo: data-science asks for an H100").returncode != 0
    after = j.live("data-science")
    c.print(f"  preview denied: {blocked}; up refused: {refused}; data-science instances on Vast.ai: "
            f"{before} before, {after} after -> {'nothing was rented' if after == before else 'SOMETHING WAS RENTED'}")
    j.ws.set_fleet("data-science", fleet)
    ok = blocked and refused and after == before

    j.step("Stop an instance in place", "ml-engineering parks its inference fleet: disk kept, storage billed only.")
    eng = j.ws.fleet("ml-engineering")
    j.ws.set_fleet("ml-engineering", {**eng, "inference": {**eng["inference"], "state": "stopped"}})
    j.ws.up("ml-engineering", message="demo: park inference")
    j.fleet_table("ml-engineering")

    backend = f"file://{state_dir}"
    j.step("The audit trail", "Every change went through a stack, so stack history is the audit log.")
    _vastguard(["audit", "--backend", backend, "--no-progress", "--project-dir", str(j.ws.root)])
    j.step("Spend so far", "Reconstructed from the checkpoints the history keeps (running: $/h; stopped: storage).")
    _vastguard(["spend", "--backend", backend, "--no-progress", "--project-dir", str(j.ws.root)])

    c.rule("[bold]Where to look next")
    c.print("  README.md: using it with real Vast.ai, onboarding (`vastguard team add`), budgets, exceptions, reports.")
    c.print("  policies/README.md: every rule and the team file format.  emulator/README.md: the local marketplace.")
    c.print(f"  Re-run with --keep to explore the stacks: ./dev pulumi ... with PULUMI_BACKEND_URL={backend}")
    return 0 if ok else 1


def _cleanup(j: Journey) -> None:
    j.step("Clean up", "Destroy every stack: all instances are released on Vast.ai.")
    for team in TEAMS:
        stacks = {s["name"] for s in j.ws.cli.json("stack", "ls")}
        if team in stacks:
            j.ws.destroy(team, check=False)
    remaining = sum(j.live(team) for team in TEAMS)
    j.console.print(f"  instances left on the emulator: {remaining}")


