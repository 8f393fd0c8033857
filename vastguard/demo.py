"""`vastguard demo`: a month of three ML teams' GPU changes, governed, reported and reconciled, in a minute or two.

It starts the local Vast.ai emulator with its virtual clock frozen on the first day of last month, copies the
project into `.demo/` (the committed stack files stay untouched) with a local file state backend, and starts
from the platform stack: it creates the three seed teams on Vast (each an account of its own), their roles,
members and scoped keys (the console's step, a key inside each team, is the emulator's control plane), judged
by the platform rules. Each team stack then gets its keys from the platform's envelopes, a preview key for
previews and a deploy key for deploys, with no key in any team's config. Then it moves the clock through the
month as the teams change their fleets: previews judged by the policy pack (verdict and estimated spend from the
engine's structured events), deploys, a change the pack denies (nothing is rented), an instance parked and started
again, a group scaled down, and one instance rented with a team's key outside Pulumi. At the month's end it
shows what finance and team leads look at: each team's chargeback invoice, the daily-spend chart against each
team's budget (a file whose path it prints) and the reconciliation with Vast's charges, which finds the
rental made outside Pulumi. Then it destroys everything: the emulator ends with no instance and no team.

Every `pulumi up` runs with `--refresh`, and the reports read the clock as frozen (`--vast-clock frozen`),
because on a frozen emulator clock Pulumi's wall-clock timestamps say nothing about the virtual month: the
provider's Vast-clock outputs and each operation's clock sample date every event (reports/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from emulator import EmulatorServer
from emulator.bodies import TeamKeyBody
from emulator.testing import Control, make_account
from engine import ensure, repo_root
from fleet.access_fields import KEY_KINDS, recipient_env
from reports.charges import env_name
from vastclient import AuthError, OfferQuery, VastClient
from vastguard.ci import run_preview
from vastguard.keys import deliver, key_source, project_name
from vastguard.summary import dollars
from vastguard.workspace import PLATFORM_POLICY_CONFIG, POLICY_PACK, Workspace, team_policy_config

TEAMS = ("ml-research", "ml-engineering", "data-science")
DEMO_DIR = repo_root() / ".demo"
BLOCKED_CHANGE: dict[str, Any] = {
    "gpu": "H100_SXM", "count": 1, "image": "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime", "disk_gb": 64,
    "max_dph": 3.5,
}
SHADOW_LABEL = "quick test (rented from a laptop)"


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="a month of three teams' GPU fleets on the local Vast.ai emulator",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--keep", action="store_true",
                      help="leave the deployed stacks in .demo/ (the emulator still stops at the end)")
    demo.add_argument("--out", metavar="DIR",
                      help="where the month's chargeback goes (default: ./demo-chargeback-YYYY-MM)")
    demo.add_argument("--month", metavar="YYYY-MM", help="the virtual month (default: last month)")
    demo.set_defaults(func=run)


def last_month(today: datetime) -> datetime:
    first = datetime(today.year, today.month, 1, tzinfo=UTC)
    previous = first - timedelta(days=1)
    return datetime(previous.year, previous.month, 1, tzinfo=UTC)


class Journey:
    def __init__(self, console: Console, ws: Workspace, emulator: EmulatorServer, owner_key: str,
                 month_start: datetime) -> None:
        self.console = console
        self.ws = ws
        self.emulator = emulator
        self.control = Control(emulator.url)
        self.owner_key = owner_key
        self.owner_id = emulator.market.authenticate(owner_key).id
        self.console_keys: dict[str, str] = {}  # each team's key made in the console (the platform's bootstrap)
        self.keys: dict[str, str] = {}  # each team's read-only preview key, for the demo's own reads
        self.t0 = month_start
        self.step_no = 0
        self.shadow_id: int | None = None

    @property
    def month(self) -> str:
        return self.t0.strftime("%Y-%m")

    def at(self, day: int, hour: int = 9) -> datetime:
        """Move the emulator's virtual clock to `day` of the month (it never goes back)."""
        moment = self.t0 + timedelta(days=day - 1, hours=hour)
        self.control.clock(set=moment.timestamp(), freeze=True)
        return moment

    def now(self) -> datetime:
        return datetime.fromtimestamp(float(self.control.call("GET", "/clock")["now"]), UTC)

    def step(self, title: str, why: str) -> None:
        self.step_no += 1
        when = self.now().strftime("%a %d %b %H:%M")
        self.console.rule(f"[bold]{self.step_no}. {when} (virtual): {title}")
        self.console.print(f"[dim]{why}[/dim]")

    def vast(self, team: str) -> VastClient:
        return VastClient(api_key=self.keys[team], base_url=self.emulator.url)

    def live(self, team: str) -> int:
        with self.vast(team) as vast:
            return len(vast.list_instances())

    def preview(self, team: str, *, policy_config: Path | None = None) -> bool:
        report, _ = run_preview(self.ws.cli, team, policy_config=policy_config or team_policy_config(team))
        for v in report.violations:
            style = "red" if v.level == "mandatory" else "yellow"
            self.console.print(f"    [{style}]\\[{v.level}] {v.policy}[/{style}]: {v.message}", highlight=False)
        colour = {"passed": "green", "advisory": "yellow"}.get(report.verdict, "red")
        if policy_config is not None:
            self.console.print(f"  {team}: [{colour}]{report.title}[/{colour}]")
            return report.verdict in {"passed", "advisory"}
        budget = _daily_budget(team)
        before, after = report.cost.before, report.cost.after
        self.console.print(f"  {team}: [{colour}]{report.title}[/{colour}]; estimated spend "
                           f"{dollars(before.daily)}/day now -> {dollars(after.daily)}/day after "
                           f"({dollars(after.hourly)}/h; daily budget ${budget})")
        return report.verdict in {"passed", "advisory"}

    def up(self, team: str, message: str, *, check: bool = True) -> bool:
        result = self.ws.up(team, message=message, refresh=True, check=check)
        return result.returncode == 0

    def platform_table(self) -> None:
        teams = self.ws.outputs("platform")["teams"]
        table = Table(title="platform: each team's Vast access (no key is shown or stored in the clear)")
        for column in ("team", "Vast team", "members (role)", "preview key", "deploy key"):
            table.add_column(column)
        for name, team in sorted(teams.items()):
            keys = team.get("keys") or {}
            table.add_row(name, str(team["team_id"]),
                          ", ".join(f"{email} ({role})" for email, role in team["members"].items()),
                          *(f"#{keys[k]['key_id']}" if k in keys else "-" for k in ("preview", "deploy")))
        self.console.print(table)

    def fleet_table(self, team: str) -> None:
        outputs = self.ws.outputs(team)
        table = Table(title=f"{team}: deployed fleet", show_lines=False)
        for column in ("instance", "GPU", "state", "Vast id", "$/h"):
            table.add_column(column)
        for name, inst in sorted(outputs.get("fleet", {}).items()):
            rate = inst.get("dph_total")
            table.add_row(name, f"{inst['num_gpus']}x {inst['quote']['gpu_name']}", inst.get("status") or "-",
                          str(inst.get("instance_id")), f"{rate:.3f}" if isinstance(rate, int | float) else "unknown")
        self.console.print(table)


def _daily_budget(team: str) -> Any:
    return json.loads(team_policy_config(team).read_text())["vast-daily-budget"]["daily_budget"]


def _vastguard(args: list[str]) -> int:
    from vastguard.cli import main

    return main(args)


@contextmanager
def _team_keys(keys: dict[str, str]) -> Iterator[None]:
    """The team keys where `vastguard reconcile` looks for them (`VASTGUARD_KEY_<TEAM>`), for this process only."""
    saved = {env_name(team): os.environ.get(env_name(team)) for team in keys}
    os.environ.update({env_name(team): key for team, key in keys.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    console = Console(highlight=False)
    month_start = (datetime.strptime(args.month, "%Y-%m").replace(tzinfo=UTC) if args.month
                   else last_month(datetime.now(UTC)))
    console.print(Panel.fit(
        f"vastguard demo: a month ({month_start:%B %Y}) of three ML teams renting GPUs on a local Vast.ai emulator,\n"
        "governed by a Pulumi policy pack, then charged back and reconciled. The emulator's clock is virtual:\n"
        "the month passes in a minute or two. No account or network needed; state lives in .demo/.",
        title="vastguard"))
    engine = ensure(log=lambda line: console.print(f"[dim]{line}[/dim]"))
    console.print(f"[dim]Pulumi engine v{engine.version} ({engine.source}): {engine.bin_dir}[/dim]")

    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    state_dir = DEMO_DIR / "state"
    out_dir = Path(args.out or f"demo-chargeback-{month_start:%Y-%m}").resolve()
    # Instant boots: on a frozen clock nothing would ever finish booting otherwise.
    emulator = EmulatorServer(port=0, seed=2026, provision_delay=0, freeze_clock=True,
                              state_file=DEMO_DIR / "emulator-state.json")
    # The secrets each team's envelopes are sealed for: the platform job and that team's job hold them (CI
    # secrets); here, in this process's memory only.
    recipients = {recipient_env(team, kind): secrets.token_urlsafe(32) for team in TEAMS for kind in KEY_KINDS}
    with emulator:
        Control(emulator.url).clock(set=(month_start + timedelta(hours=8)).timestamp(), freeze=True)
        owner = make_account(emulator, balance=20000, username="platform-owner")
        ws = Workspace.create(engine, DEMO_DIR / "workspace", state_dir=state_dir, extra_env=recipients)
        journey = Journey(console, ws, emulator, owner.api_key, month_start)
        try:
            result = _month(journey, state_dir, out_dir)
        except subprocess.CalledProcessError as err:
            console.print(f"[red]a step failed:[/red] {err}")
            result = 1
        finally:
            if not args.keep:
                _cleanup(journey)
    if not args.keep:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
    console.print(f"[dim]demo took {time.monotonic() - started:.0f} s[/dim]")
    return result


def _platform(j: Journey) -> bool:
    c = j.console
    j.step("The platform stack: each team's Vast team, roles, members and keys",
           "stacks/Pulumi.platform.yaml declares who can do what on Vast; the platform rules judge it at preview "
           f"like a fleet (policies/platform.json). The emulator runs at {j.emulator.url}.")
    j.ws.init_platform(personal_key=j.owner_key, vast_url=j.emulator.url)
    ok = j.preview("platform", policy_config=PLATFORM_POLICY_CONFIG)
    j.up("platform", "create the teams")
    teams = j.ws.outputs("platform")["teams"]
    c.print("  Vast made three teams, each an account of its own. Its first key inside a team comes only from "
            "Vast's console: the platform owner makes one per team (here, the emulator's control plane) and "
            "stores it as the platform stack's secret vastguard:teamKeys.<team>.")
    for team in TEAMS:
        key = secrets.token_urlsafe(24)
        j.emulator.market.seed_team_key(teams[team]["team_id"],
                                        TeamKeyBody(api_key=key, user_id=j.owner_id, name="console"))
        j.console_keys[team] = key
        j.ws.set_team_key(team, key)
    ok = j.up("platform", "roles, members and keys") and ok
    j.platform_table()
    c.print("  Each key is exported only as an envelope sealed for one job: a team's preview job opens its preview "
            "key with VASTGUARD_PREVIEW_SECRET_<TEAM>, its deploy job the deploy key with "
            "VASTGUARD_DEPLOY_SECRET_<TEAM>; no team stack holds a key.")
    with VastClient(api_key=j.owner_key, base_url=j.emulator.url) as owner:
        for team in TEAMS:
            # Prepaid: each team's balance covers its budget for the month, so Vast itself stops it beyond that.
            owner.transfer_credit(teams[team]["team_id"], _daily_budget(team) * 30)
    c.print("  The platform owner moved each team a month of its daily budget: a team account spends only its own "
            "balance.")
    backend = j.ws.cli.env["PULUMI_BACKEND_URL"]
    for team in TEAMS:
        j.ws.init_team(team, vast_url=j.emulator.url)
        source = key_source(j.ws.root, team)
        if source is not None:
            j.keys[team] = deliver(source, "preview", backend_url=backend, project=project_name(j.ws.root),
                                   environ=j.ws.cli.env).key
    return ok and len(j.keys) == len(TEAMS)


def _month(j: Journey, state_dir: Path, out_dir: Path) -> int:
    c = j.console
    ok = _platform(j)

    j.at(1, 9)
    j.step("Preview every team's fleet with the policy pack",
           "CI runs this on each pull request: live market quotes, estimated spend against the team's budget, "
           "and the policy verdict, before anything is rented.")
    passed = [team for team in TEAMS if j.preview(team)]
    with j.vast("data-science") as vast:
        offer = vast.search_offers(OfferQuery(gpu_names="RTX 3090", disk_gb=16, limit=1))[0]
        try:
            rogue = vast.create_instance(offer.id, image="pytorch/pytorch", disk_gb=16, label="preview key rents?")
        except AuthError:
            c.print("  data-science's preview key searches and lists, and Vast refuses its rent (401): a pull "
                    "request's preview job cannot rent anything.")
        else:
            c.print("  [red]data-science's preview key rented an instance: it must not be able to[/red]")
            with VastClient(api_key=j.console_keys["data-science"], base_url=j.emulator.url) as owner:
                owner.destroy(rogue)
            ok = False
    j.step("Deploy the compliant fleets", "CI runs `pulumi up` with the same pack on merge.")
    for team in passed:
        j.up(team, f"deploy {team} fleet")
        j.fleet_table(team)

    j.at(4, 10)
    j.step("A change the policy blocks",
           "data-science asks for an H100, which is not on its allow-list and far above its $0.30/h cap.")
    fleet = j.ws.fleet("data-science")
    before = j.live("data-science")
    j.ws.set_fleet("data-science", {**fleet, "training": BLOCKED_CHANGE})
    blocked = not j.preview("data-science")
    refused = not j.up("data-science", "data-science asks for an H100", check=False)
    after = j.live("data-science")
    c.print(f"  preview denied: {blocked}; up refused: {refused}; data-science instances on Vast.ai: "
            f"{before} before, {after} after -> {'nothing was rented' if after == before else 'SOMETHING WAS RENTED'}")
    j.ws.set_fleet("data-science", fleet)
    ok = ok and blocked and refused and after == before

    j.at(9, 18)
    j.step("Park the inference fleet", "ml-engineering stops its inference boxes: disks kept, storage billed only.")
    eng = j.ws.fleet("ml-engineering")
    j.ws.set_fleet("ml-engineering", {**eng, "inference": {**eng["inference"], "state": "stopped"}})
    j.up("ml-engineering", "park inference")

    j.at(13, 9)
    j.step("Back to work, and a smaller fine-tuning group",
           "ml-engineering starts inference again; ml-research drops one of its two fine-tuning boxes.")
    j.ws.set_fleet("ml-engineering", eng)
    j.up("ml-engineering", "inference back")
    research = j.ws.fleet("ml-research")
    j.ws.set_fleet("ml-research", {**research, "finetune": {**research["finetune"], "count": 1}})
    j.up("ml-research", "one finetune box is enough")

    j.at(17, 14)
    j.step("A rental outside Pulumi",
           "Someone uses data-science's console key from a laptop: no preview, no policy, no stack. Stack history "
           "cannot see it; the team's Vast.ai charges will.")
    with VastClient(api_key=j.console_keys["data-science"], base_url=j.emulator.url) as vast:
        offer = vast.search_offers(OfferQuery(gpu_names="RTX 4090", disk_gb=16, order=(("dph_total", "asc"),),
                                              limit=1))[0]
        j.shadow_id = vast.create_instance(offer.id, image="pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime",
                                           disk_gb=16, label=SHADOW_LABEL)
    c.print(f"  instance {j.shadow_id} rented at ${offer.dph_total:.3f}/h, label {SHADOW_LABEL!r}")

    j.at(24, 11)
    j.step("Wind down research", "ml-research parks its pretraining box for the rest of the month.")
    research = j.ws.fleet("ml-research")
    j.ws.set_fleet("ml-research", {**research, "pretrain": {**research["pretrain"], "state": "stopped"}})
    j.up("ml-research", "park pretrain")

    end = _next_month(j)
    backend = f"file://{state_dir}"
    common = ["--backend", backend, "--no-progress", "--project-dir", str(j.ws.root), "--now", end.isoformat(),
              "--vast-clock", "frozen"]
    j.step("The audit trail", "Every change that went through a stack, from stack history: who, when, what.")
    _vastguard(["audit", *common])
    j.step(f"Chargeback for {j.month}",
           "One invoice per team, reconstructed from the stacks' history at Vast's prices, and the month's daily "
           "spend per team against its daily budget.")
    _vastguard(["chargeback", *common, "--month", j.month, "--out", str(out_dir),
                "--team-files", str(POLICY_PACK / "teams")])
    for team in TEAMS:
        c.print(Markdown((out_dir / f"{team}.md").read_text()))
    chart = out_dir / "daily-spend.svg"
    c.print(f"[bold]The chart of the month: {chart}[/bold] (open it in a browser)")
    j.step("Reconciliation with Vast.ai's charges",
           "What each team's account was billed (read with its preview key: billing read), against what its stacks "
           "account for: the rental made outside Pulumi shows up as shadow spend.")
    with _team_keys(j.keys):
        code = _vastguard(["reconcile", *common, "--month", j.month, "--vast-url", j.emulator.url])
        report_path = DEMO_DIR / "reconcile.json"
        _vastguard(["reconcile", *common, "--month", j.month, "--vast-url", j.emulator.url, "--format", "json",
                    "--output", str(report_path)])
    rows = json.loads(report_path.read_text())["rows"]
    found = [r for r in rows if r["status"] == "shadow" and r["instance_id"] == j.shadow_id]
    c.print(f"  shadow rental found: {'yes' if found else 'NO'} (instance {j.shadow_id}, data-science's key; "
            f"reconcile exited {code}, as CI would fail)")
    ok = ok and bool(found) and chart.exists()

    c.rule("[bold]Where to look next")
    c.print("  README.md: using it with real Vast.ai, onboarding (`vastguard team add`), budgets, exceptions, reports.")
    c.print("  policies/README.md: every rule and the team file format.  emulator/README.md: the local marketplace.")
    c.print(f"  {out_dir}: the invoices (CSV, Markdown), the chart and chargeback.json; "
            f"`vastguard chargeback --format focus` writes the month as FinOps FOCUS rows.")
    return 0 if ok else 1


def _next_month(j: Journey) -> datetime:
    """Just past the month's end, so its last day is billed whole."""
    first = (j.t0 + timedelta(days=32)).replace(day=1)
    moment = first + timedelta(minutes=5)
    j.control.clock(set=moment.timestamp(), freeze=True)
    return moment


def _cleanup(j: Journey) -> None:
    j.step("Clean up", "Destroy every team stack, release the rental made outside Pulumi, then the platform stack "
           "(the teams' keys, members, roles and the teams): nothing stays rented.")
    stacks = {s["name"] for s in j.ws.cli.json("stack", "ls")}
    for team in TEAMS:
        if team in stacks and team in j.keys:
            j.ws.destroy(team, check=False)
    if j.shadow_id is not None:
        with VastClient(api_key=j.console_keys["data-science"], base_url=j.emulator.url) as vast:
            vast.destroy(j.shadow_id)
    remaining = sum(len(j.emulator.market.all_instances(view.account)[0]) for view in j.emulator.market.accounts())
    if "platform" in stacks:
        j.ws.destroy("platform", check=False)
    teams = [v for v in j.emulator.market.accounts() if v.account.kind == "team" and v.account.deleted_at is None]
    j.console.print(f"  instances left on the emulator: {remaining}; teams left: {len(teams)}")
