"""Issue 14's "Done when", through the real engine and provider on the emulator's frozen virtual clock: a scripted
month of three Vast teams (Vast team accounts of one platform owner) with fleet changes deployed through the policy
pack, rentals made with a team's key outside Pulumi, and an idle GPU, while the guard (and, for the prepaid team,
`vastguard budget allocate`) runs every 15 virtual minutes, in-process (the engine is what is tested only where
it runs: previews and deploys).

- ml-research, prepaid (monthly budget): its spend for the month never exceeds the budget, to the cent, although
  a GPU rented outside Pulumi burns on after the team parked its fleet (Vast stops it at zero balance), and the
  month's top-ups less its reclaims are what it spent;
- ml-engineering, daily budget with `action: pause`: no day's spend exceeds the budget by more than one guard
  interval of its burn; the first preview after a pause denies a new running GPU, the first of the next day passes;
- data-science: an idle GPU is stopped once its GPU has stayed under the team's threshold for its window;
- every crossing alerts exactly once (a local webhook receiver counts them), and at the month's end spend and
  reconcile equal the emulator's charges to the cent, the guard's stops and starts included, with both rentals
  outside Pulumi found as shadow spend.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from budget.alerts import Alerter
from budget.allocate import Allocator
from budget.cli import connector
from budget.guard import Guard
from budget.keys import PLATFORM_KEY_ENV, EnvKeys, owner_env_name
from budget.policy import load_policies
from budget.store import BudgetLog
from emulator import EmulatorServer
from emulator.bodies import ClockBody
from emulator.testing import Control, make_account, make_team, make_team_key
from engine import Engine
from fleet.budget_log import Actor, Crossing, read_guard_records
from fleet.costs import cents
from policies.teamfile import TEMPLATE, parse_team_file
from reports.charges import env_name
from reports.cli import EXIT_DIFFERENCES, main
from reports.sources import LocalBucket
from tests.budget.world import Receiver
from tests.e2e.conftest import engine, pulumi_home  # noqa: F401 (fixtures)
from vastclient import OfferQuery, VastClient
from vastguard.ci import run_preview
from vastguard.workspace import POLICY_PACK, Workspace

pytestmark = pytest.mark.engine

T0 = datetime(2026, 11, 1, tzinfo=UTC)
MONTH = "2026-11"
STEP = timedelta(minutes=15)
IMAGE = "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime"
TEAMS = ("ml-research", "ml-engineering", "data-science")
RESEARCH_MONTHLY = 300
ENGINEERING_DAILY = 10


def box(gpu: str, max_dph: float, **extra: Any) -> dict[str, Any]:
    return {"gpu": gpu, "count": 1, "image": IMAGE, "disk_gb": 16, "max_dph": max_dph, **extra}


def team_file(team: str, **settings: Any) -> dict[str, Any]:
    data = json.loads(TEMPLATE.read_text().replace("new-team", team))
    data["vast-gpu-allow-list"]["allowed_gpus"] = ["RTX_3090", "RTX_4090"]
    data["vast-instance-max-dph"]["max_dph"] = 1
    data["vast-max-instances"]["max_instances"] = data["vast-max-gpus"]["max_gpus"] = 16
    daily = settings.pop("daily", 100)
    for block in ("vast-daily-budget", "vast-daily-budget-warning"):
        data[block]["daily_budget"] = daily
    data["vast-monthly-budget"]["monthly_budget"] = settings.pop("monthly", None)
    data["vast-budget-enforcement"].update(settings)
    return parse_team_file(data, expect_team=team).to_json()


@dataclass
class Month:
    ws: Workspace
    srv: EmulatorServer
    files: Path
    state: Path
    env: dict[str, str] = field(repr=False)
    receiver: Receiver
    teams: dict[str, int] = field(default_factory=dict)  # team -> Vast team account id
    burn: dict[tuple[str, date], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    guard_at: datetime = T0

    @property
    def log(self) -> BudgetLog:
        return BudgetLog(LocalBucket(self.state))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.srv.market.clock.now(), UTC)

    def set_clock(self, moment: datetime) -> None:
        self.srv.market.update_clock(ClockBody(set=moment.timestamp()))

    def key(self, team: str) -> str:
        return self.env[env_name(team)]

    def client(self, team: str) -> VastClient:
        return VastClient(api_key=self.key(team), base_url=self.srv.url)

    def guard_pass(self) -> None:
        """What the scheduled workflow does every 15 minutes: allocate prepaid credit, then the guard."""
        policies = load_policies(self.files, TEAMS, today=self.now().date())
        keys, connect = EnvKeys(self.env), connector(self.srv.url, pace=False)
        allocations = Allocator(log=self.log, keys=keys, connect=connect,
                                actor=Actor(who="ci", command="vastguard budget allocate")).run(policies)
        assert not any(o.errors for o in allocations), [o.errors for o in allocations]
        outcomes = Guard(log=self.log, keys=keys, connect=connect, alerter=Alerter(webhook=self.receiver.url),
                         actor=Actor(who="ci", command="vastguard guard")).run(policies)
        assert not any(o.errors for o in outcomes), [o.errors for o in outcomes]
        day = self.now().date()
        for o in outcomes:
            assert o.reading is not None
            burning = sum((i.dph_total or Decimal(0) for i in o.reading.instances if i.running), Decimal(0))
            self.burn[o.team, day] = max(self.burn[o.team, day], burning)

    def until(self, moment: datetime) -> None:
        """Run the guard every 15 virtual minutes up to `moment`, then set the clock there."""
        while self.guard_at + STEP <= moment:
            self.guard_at += STEP
            self.set_clock(self.guard_at)
            self.guard_pass()
        self.set_clock(moment)

    def at(self, day: int, hour: int = 9, minute: int = 7) -> datetime:
        moment = T0 + timedelta(days=day, hours=hour, minutes=minute)
        self.until(moment)
        return moment

    def policy_args(self, team: str) -> list[str]:
        return ["--policy-pack", str(POLICY_PACK), "--policy-pack-config", str(self.files / f"{team}.json")]

    def up(self, team: str, fleet: dict[str, Any], message: str) -> None:
        self.ws.set_fleet(team, fleet)
        result = self.ws.cli.run("up", "--yes", "--skip-preview", "--refresh", "--message", message,
                                 *self.policy_args(team), stack=team, check=False)
        lines = (result.stdout + result.stderr).splitlines()
        assert result.returncode == 0, "\n".join(ln for ln in lines if "error" in ln or "mandatory" in ln
                                                  or "vast-" in ln or f"{team}: " in ln)[-4000:]

    def preview(self, team: str, fleet: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
        self.ws.set_fleet(team, fleet)
        report, _ = run_preview(self.ws.cli, team, policy_config=self.files / f"{team}.json")
        return report.verdict, [(v.policy, v.message) for v in report.violations if v.level == "mandatory"]

    def rent(self, team: str, gpu: str, label: str) -> int:
        with self.client(team) as vast:
            offer = vast.search_offers(OfferQuery(gpu_names=gpu, disk_gb=16, order=(("dph_total", "asc"),),
                                                  limit=1))[0]
            return vast.create_instance(offer.id, image=IMAGE, disk_gb=16, label=label)

    def live(self, team: str) -> dict[str, Any]:
        with self.client(team) as vast:
            return {(i.label or "").split(" ")[0]: i for i in vast.list_instances()}

    def charges(self, team: str, first: date, last: date) -> dict[int, Decimal]:
        out: dict[int, Decimal] = defaultdict(Decimal)
        with self.client(team) as vast:
            for charge in vast.charges(first, last):
                assert charge.instance_id is not None
                out[charge.instance_id] += charge.amount
        return dict(out)

    def day_spend(self, team: str, day: date) -> Decimal:
        return sum(self.charges(team, day, day).values(), Decimal(0))


@pytest.fixture(scope="module")
def month(engine: Engine, pulumi_home: Path, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
          ) -> Iterator[Month]:
    tmp = tmp_path_factory.mktemp("budget-month")
    files, state = tmp / "teams", tmp / "state"
    files.mkdir()
    settings = {
        "ml-research": {"monthly": RESEARCH_MONTHLY, "daily": 40, "prepaid": {"period": "month", "reclaim": True}},
        "ml-engineering": {"daily": ENGINEERING_DAILY, "action": "pause"},
        "data-science": {"daily": 10, "idle": {"max_gpu_util": 0.1, "minutes": 120, "action": "stop"}},
    }
    for team, values in settings.items():
        (files / f"{team}.json").write_text(json.dumps(team_file(team, **values)))
    receiver = Receiver()
    with EmulatorServer(port=0, seed=7, provision_delay=0, rate_limits=False, freeze_clock=True) as srv:
        srv.market.update_clock(ClockBody(set=T0.timestamp()))
        platform = make_account(srv, balance=100_000, username="platform")
        env = {PLATFORM_KEY_ENV: platform.api_key}
        ws = Workspace.create(engine, tmp / "ws", state_dir=state,
                              extra_env={"PULUMI_HOME": str(pulumi_home), "VASTGUARD_TEAM_FILES": str(files)})
        teams = {}
        for team in TEAMS:
            vast_team = make_team(srv, platform, name=team, transfer_credit=0 if team == "ml-research" else 2000)
            key = make_team_key(srv, vast_team)  # the console's key in the team: the stack's and the guard's
            env[env_name(team)] = env[owner_env_name(team)] = key
            teams[team] = vast_team.id
            ws.init_team(team, api_key=key, vast_url=srv.url)
        m = Month(ws=ws, srv=srv, files=files, state=state, env=env, receiver=receiver, teams=teams)
        m.set_clock(T0)
        m.guard_pass()  # the first allocation: ml-research's credit, before anything is rented
        yield m
    receiver.close()


TRAIN = box("RTX_3090", 0.4)
EVAL = box("RTX_4090", 0.9)
SERVE = box("RTX_4090", 0.9)
NOTEBOOK = box("RTX_3090", 0.4)


def test_a_month_of_budgets_that_hold(month: Month, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = month
    assert m.log.transfers("ml-research")[0].intent.amount == RESEARCH_MONTHLY
    m.at(0, 0, 7)
    m.up("ml-research", {"train": TRAIN, "eval": EVAL}, "research: train and eval")
    m.up("ml-engineering", {"serve": SERVE}, "engineering: one server")
    m.up("data-science", {"notebook": NOTEBOOK}, "data science: a notebook")
    notebook = m.live("data-science")["data-science/notebook-0"].id
    Control(m.srv.url).gpu_util(notebook, points=[{"at": (T0 + timedelta(days=3, hours=10)).timestamp(), "util": 0.8},
                                                  {"at": (T0 + timedelta(days=3, hours=10, minutes=5)).timestamp(),
                                                   "util": 0.02}])

    # ml-engineering: a second box rented with the team's key, outside Pulumi, at 02:00 on day 5.
    m.at(5, 2, 0)
    eng_shadow = m.rent("ml-engineering", "RTX 4090", "quick test")
    when = m.at(5, 22, 37)
    day = f"day:{when:%Y-%m-%d}@UTC"
    paused = [a for a in m.log.actions("ml-engineering") if a.action == "stop" and a.reason == "pause"]
    assert {a.instance_id for a in paused} == {m.live("ml-engineering")["ml-engineering/serve-0"].id, eng_shadow}
    assert {a.window for a in paused} == {day}, "the guard paused the team for the day"
    verdict, violations = m.preview("ml-engineering", {"serve": SERVE, "extra": SERVE})
    assert verdict == "denied", (when, violations)
    assert any(p == "vast-budget-enforcement" and f"paused the team for {day}" in msg
               for p, msg in violations), violations
    with m.client("ml-engineering") as vast:
        vast.destroy(eng_shadow)
    m.at(6, 9, 7)
    verdict, violations = m.preview("ml-engineering", {"serve": SERVE, "extra": SERVE})
    assert verdict in {"passed", "advisory"}, violations  # the first preview of the next day passes
    m.up("ml-engineering", {"serve": SERVE, "extra": SERVE}, "engineering: a second server")

    m.at(8)  # the pack judges the month: a third box to the month's end would not fit, so eval is parked
    parked_eval = {**EVAL, "state": "stopped"}
    m.up("ml-research", {"train": TRAIN, "eval": parked_eval, "dev": TRAIN}, "research: a dev box, eval parked")
    m.at(10)
    # Parked, not removed: `up --refresh` hands the pack the refreshed state of an instance it is about to delete
    # (engine 3.259), so a removal would be judged as if the instance ran on.
    m.up("ml-engineering", {"serve": SERVE, "extra": {**SERVE, "state": "stopped"}}, "engineering: park the extra")
    m.up("data-science", {"notebook": {**NOTEBOOK, "state": "stopped"}}, "data science: park the notebook")
    m.at(12)
    m.up("ml-research", {"train": {**TRAIN, "disk_gb": 32}, "eval": parked_eval, "dev": TRAIN},
         "research: bigger disk (a replacement)")
    m.at(20)
    m.up("ml-research", {"train": {**TRAIN, "disk_gb": 32}, "dev": TRAIN}, "research: drop eval")
    m.at(24)
    parked = {"train": {**TRAIN, "disk_gb": 32, "state": "stopped"}, "dev": {**TRAIN, "state": "stopped"}}
    m.up("ml-research", parked, "research: park everything")
    m.at(24, 9, 30)
    research_shadow = m.rent("ml-research", "H100 SXM", "left running")  # outside Pulumi, and never stopped
    end = m.at(30, 0, 5)  # just past the month's end: the guard ran through its last day

    # The idle notebook was stopped by the guard after two hours under 10%, before the team parked it.
    (idle,) = [a for a in m.log.actions("data-science") if a.reason == "idle"]
    assert idle.instance_id == notebook
    assert abs(idle.at - (T0 + timedelta(days=3, hours=12, minutes=15)).timestamp()) < 1

    # Prepaid: the month's spend is within its budget to the cent, although the rental outside Pulumi ran on until
    # Vast stopped it at zero balance; and the month's top-ups less its reclaims are what it spent.
    research = m.charges("ml-research", date(2026, 11, 1), date(2026, 11, 30))
    spent = sum(research.values(), Decimal(0))
    assert cents(spent) <= RESEARCH_MONTHLY, spent
    assert spent > RESEARCH_MONTHLY - 5, spent  # the ceiling was reached: Vast stopped the team there
    shadow_row = m.live("ml-research")["left"]
    assert shadow_row.id == research_shadow and shadow_row.actual_status == "stopped"
    assert "credit exhausted" in (shadow_row.status_msg or "")
    november = [t for t in m.log.transfers("ml-research") if t.intent.period == "month:2026-11@UTC" and t.sent]
    given = sum((t.intent.amount for t in november if t.intent.kind == "top-up"), Decimal(0))
    taken = sum((t.intent.amount for t in november if t.intent.kind == "reclaim"), Decimal(0))
    assert abs(given - taken - spent) < Decimal("0.01"), (given, taken, spent)
    assert any(t.intent.closes for t in november)  # December's first allocation closed November

    # Pause: no day's spend exceeds the daily budget by more than one guard interval of the team's burn.
    paused_days = {a.window for a in m.log.actions("ml-engineering") if a.reason == "pause"}
    assert len(paused_days) >= 3, paused_days  # day 5 (the rental), and the days of two servers
    for offset in range(30):
        each = date(2026, 11, 1) + timedelta(days=offset)
        allowance = m.burn["ml-engineering", each] * Decimal("0.25")
        assert m.day_spend("ml-engineering", each) <= ENGINEERING_DAILY + allowance, each

    # Each crossing alerted exactly once: one webhook post per claim, and a claim for every crossing posted.
    keys = m.log.keys(".vastguard/guard/")
    claims = [(r.team, r.window, r.threshold) for name, r in read_guard_records(keys, m.log.bucket.read)
              if name.startswith("crossing-") and isinstance(r, Crossing)]
    assert len(claims) == len(set(claims)) == len(m.receiver.bodies) - sum(
        1 for b in m.receiver.bodies if "is idle" in b["text"])
    assert sum(1 for t in m.receiver.texts() if "ml-engineering has spent its daily budget" in t) == len(paused_days)

    # The reports: spend and reconcile equal Vast's charges to the cent, pauses included; the two rentals made
    # outside Pulumi are shadow spend.
    for team in TEAMS:
        monkeypatch.setenv(env_name(team), m.key(team))
    backend = f"file://{m.state}"
    common = ["--backend", backend, "--now", end.isoformat(), "--vast-clock", "frozen", "--no-progress"]
    out = tmp_path / "reconcile.json"
    code = main(["reconcile", *common, "--month", MONTH, "--vast-url", m.srv.url, "--all", "--format", "json",
                 "--output", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert code == EXIT_DIFFERENCES  # the shadows
    assert {r["status"] for r in rows} == {"match", "shadow"}, [r for r in rows if r["status"] != "match"]
    assert {r["instance_id"] for r in rows if r["status"] == "shadow"} == {eng_shadow, research_shadow}
    for row in rows:
        if row["status"] == "match":
            assert cents(Decimal(row["reconstructed"])) == cents(Decimal(row["billed"])), row
    spend_out = tmp_path / "spend.json"
    assert main(["spend", *common, "--month", MONTH, "--by", "month", "--format", "json",
                 "--output", str(spend_out)]) == 0
    declared = sum((Decimal(r["billed"]) for r in rows if r["status"] == "match"), Decimal(0))
    assert cents(Decimal(json.loads(spend_out.read_text())["known"])) == cents(declared)
    audit_out = tmp_path / "audit.json"
    monkeypatch.setenv(PLATFORM_KEY_ENV, m.env[PLATFORM_KEY_ENV])
    assert main(["audit", *common, "--vast", "--vast-url", m.srv.url, "--format", "json",
                 "--output", str(audit_out)]) == 0
    events = json.loads(audit_out.read_text())["events"]
    assert any(e["source"] == "vast" and e["kind"] == "instance.create" and e["through"] == "outside Pulumi"
               and str(research_shadow) in e["message"] for e in events)
    assert any(e["kind"] == "credit reclaim" for e in events) and any(e["kind"] == "guard pause" for e in events)
    transfers = [e for e in events if e["source"] == "vast" and e["kind"] == "user.transfer_credit"]
    assert transfers and all(e["through"].startswith("vastguard budget allocate") for e in transfers)
