"""A scripted month with outbid periods and the delete flows that leave no clock sample, through the real engine
and provider against the emulator, on both clock modes: spend, chargeback (its FOCUS rows too) and reconcile equal
the emulator's charges to the cent, with on-demand and interruptible hours apart.

- An interruptible group is rented at its bid; competing demand outbids it at a known virtual time, a refresh
  shows it outbid, an `up --refresh` while it is outbid replaces nothing, and it resumes by itself when the
  demand leaves; a change of `max_bid` changes the bid in place.
- `pulumi up --refresh` that removes the stack's last instances, and `pulumi destroy` (with `--refresh` on the
  frozen clock, without on the running one): the final checkpoint of either holds no instance and so no clock
  sample; the reports date those deletes by the end of Vast's billing (`reports.vast_dates`).

Frozen: the emulator's clock moves only when the script sets it (`--vast-clock frozen`). Running: it follows real
time and the script jumps it forward (`--vast-clock running`); a change found by a refresh is then dated by the
refresh, seconds after it happened, so only cents are compared there.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from emulator import EmulatorServer
from emulator.bodies import ClockBody, DemandBody
from engine import Engine
from fleet.costs import cents
from reports.charges import env_name
from reports.cli import main
from tests.e2e.conftest import engine, pulumi_home  # noqa: F401 (fixtures)
from tests.e2e.test_scripted_month import IMAGE, MONTH, T0, TEAM, TRAIN
from tests.e2e.test_scripted_month import Month as ScriptedMonth
from tests.reports.test_focus import check_against_spec
from vastclient import VastClient
from vastguard.workspace import Workspace

pytestmark = pytest.mark.engine

BATCH: dict[str, Any] = {"gpu": "RTX_4090", "count": 1, "image": IMAGE, "disk_gb": 32, "max_dph": 0.40,
                         "interruptible": True, "max_bid": 0.20}


class Month(ScriptedMonth):
    """The scripted month's helpers, on either clock, with refreshes and destroys of their own."""

    def __init__(self, ws: Workspace, srv: EmulatorServer, api_key: str, clock: str) -> None:
        super().__init__(ws, srv, next(iter(srv.market.state.accounts.values())), api_key)
        self.clock = clock

    def run(self, *args: str) -> None:
        self.ws.cli.run(*args, stack=TEAM)

    def live_bids(self) -> dict[str, tuple[int, str, bool]]:
        """name -> (instance id, actual status, bid?) of the team's live instances."""
        return {(i.label or "").split(" ")[0].split("/")[-1]: (i.id, i.actual_status, i.is_bid)
                for i in self.srv.market.all_instances(self.account)[0]}

    def gpu_hours(self) -> dict[int, Decimal]:
        """The GPU hours the emulator billed per instance (its charges' gpu items)."""
        hours: dict[int, Decimal] = defaultdict(Decimal)
        with VastClient(api_key=self.api_key, base_url=self.srv.url) as vast:
            for charge in vast.charges(date(2026, 11, 1), date(2026, 11, 30)):
                assert charge.instance_id is not None
                hours[charge.instance_id] += sum((i.quantity or Decimal(0) for i in charge.items
                                                  if i.type == "gpu"), Decimal(0))
        return dict(hours)

    def report(self, command: str, out: Path, *extra: str) -> tuple[int, Any]:
        argv = [command, "--backend", self.ws.cli.env["PULUMI_BACKEND_URL"], "--now", self.now().isoformat(),
                "--vast-clock", self.clock, "--no-progress", "--vast-url", self.srv.url, *extra]
        if command == "chargeback":
            code = main([*argv, "--month", MONTH, "--out", str(out)])
            return code, json.loads((out / "chargeback.json").read_text())
        code = main([*argv, "--month", MONTH, "--format", "json", "--output", str(out)])
        return code, json.loads(out.read_text())


@pytest.fixture(params=["frozen", "running"])
def month(request: pytest.FixtureRequest, engine: Engine, pulumi_home: Path,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Month]:
    clock: str = request.param
    tmp = tmp_path_factory.mktemp(f"bids-month-{clock}")
    with EmulatorServer(port=0, seed=11, provision_delay=0, rate_limits=False,
                        freeze_clock=clock == "frozen") as srv:
        srv.market.update_clock(ClockBody(set=T0.timestamp()))
        api_key = f"{TEAM}-{secrets.token_hex(16)}"
        srv.create_account(api_key=api_key, balance=100_000, username=TEAM)
        ws = Workspace.create(engine, tmp / "ws", state_dir=tmp / "state",
                              extra_env={"PULUMI_HOME": str(pulumi_home)})
        ws.init_team(TEAM, api_key=api_key, vast_url=srv.url)
        yield Month(ws, srv, api_key, clock)


def test_a_month_with_outbid_periods_and_sampleless_deletes_reconciles_to_the_cent(
        month: Month, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    month.at(0.25)
    month.up({"train": TRAIN, "batch": BATCH}, "a training box and an interruptible batch box")
    first = month.live_bids()
    assert {n: (s, bid) for n, (_, s, bid) in first.items()} == {
        "train-0": ("running", False), "batch-0": ("running", True)}
    batch_id = first["batch-0"][0]
    assert month.instance_outputs()["batch-0"]["bid"] == 0.20

    # Someone bids more for batch-0's machine from day 2 until day 3.5.
    month.at(2)
    month.srv.market.add_demand(DemandBody(instance_id=batch_id, kind="bid", price=0.30,
                                           end=(T0 + timedelta(days=3.5)).timestamp()))
    month.run("refresh", "--yes", "--skip-preview", "--message", "nightly refresh")
    outs = month.instance_outputs()["batch-0"]
    assert (outs["outbid"], outs["status"], outs["state"]) == (True, "stopped", "running")
    month.at(2.5)
    month.up({"train": TRAIN, "batch": BATCH}, "an up while outbid")  # replaces and restarts nothing
    assert month.live_bids()["batch-0"] == (batch_id, "stopped", True)
    assert set(month.live_bids()) == {"train-0", "batch-0"}
    month.at(3.5)  # the demand leaves: batch-0 resumes by itself
    assert month.live_bids()["batch-0"] == (batch_id, "running", True)
    month.run("refresh", "--yes", "--skip-preview", "--message", "nightly refresh")
    assert month.instance_outputs()["batch-0"]["outbid"] is False

    month.at(5)
    month.up({"train": TRAIN, "batch": {**BATCH, "max_bid": 0.25}}, "bid higher")
    assert month.live_bids()["batch-0"] == (batch_id, "running", True)  # in place: the same instance
    assert float(month.srv.market.state.instances[batch_id].dph_base) == 0.25
    assert month.instance_outputs()["batch-0"]["bid"] == 0.25

    month.at(8)  # up --refresh removing the stack's last instances: its final checkpoint has no clock sample
    month.up({}, "wind down")
    assert month.live_bids() == {}

    month.at(10)
    month.up({"train": TRAIN, "batch": BATCH}, "back for the second half")
    assert len(month.live_bids()) == 2
    month.at(15)  # destroy: no resources, so no sample, in its final checkpoint either
    month.run("destroy", "--yes", "--skip-preview", *(["--refresh"] if month.clock == "frozen" else []))
    assert month.live_bids() == {}

    month.at(20)
    billed, gpu_hours = month.billed(), month.gpu_hours()
    assert len(billed) == 4 and all(amount > 0 for amount in billed.values())
    total = sum(billed.values(), Decimal(0))
    exact = Decimal("0.001") if month.clock == "frozen" else Decimal("0.01")

    monkeypatch.setenv(env_name(TEAM), month.api_key)
    code, rec = month.report("reconcile", tmp_path / "rec.json", "--all")
    assert code == 0, rec["rows"]
    assert {r["status"] for r in rec["rows"]} == {"match"} and len(rec["rows"]) == 4
    for row in rec["rows"]:
        # Running, a value a few micro-dollars from a half cent may round the other way: within a cent is the test.
        if month.clock == "frozen":
            assert cents(Decimal(row["reconstructed"])) == cents(billed[row["instance_id"]]), row
        assert abs(Decimal(row["difference"])) < exact, row
        hours = Decimal(row["on_demand_hours"]) + Decimal(row["interruptible_hours"])
        assert abs(hours - gpu_hours[row["instance_id"]]) < Decimal("0.01"), row
    (team,) = rec["teams"]
    assert Decimal(team["interruptible_hours"]) > 0 and Decimal(team["on_demand_hours"]) > 0

    code, spend = month.report("spend", tmp_path / "spend.json", "--by", "month")
    assert code == 0 and abs(Decimal(spend["known"]) - total) < exact, spend
    (period,) = spend["teams"][0]["periods"]
    assert Decimal(period["interruptible_hours"]) > 0 and Decimal(period["running_hours"]) > 0
    code, chargeback = month.report("chargeback", tmp_path / "cb")
    (invoice,) = chargeback["invoices"]
    assert code == 0 and abs(Decimal(invoice["total"]) - total) < exact, invoice
    assert {ln["component"] for ln in invoice["lines"]} == {"running", "interruptible", "storage"}

    focus_dir = tmp_path / "focus"
    assert main(["chargeback", "--backend", month.ws.cli.env["PULUMI_BACKEND_URL"], "--now", month.now().isoformat(),
                 "--vast-clock", month.clock, "--no-progress", "--vast-url", month.srv.url, "--month", MONTH,
                 "--format", "focus", "--out", str(focus_dir)]) == 0
    rows = check_against_spec((focus_dir / f"focus-cost-and-usage-{MONTH}.csv").read_text())
    assert abs(sum((Decimal(r["BilledCost"]) for r in rows), Decimal(0)) - total) < exact
    assert {(r["x_Usage"], r["PricingCategory"]) for r in rows} == {
        ("running", "Standard"), ("interruptible", "Dynamic"), ("storage", "Standard")}
