"""Issue 6's last criterion through the real engine and the real provider, against the emulator's frozen
virtual clock: a scripted month of `pulumi up --refresh` (instances added, stopped, replaced, destroyed at known
virtual times) yields spend, chargeback and its FOCUS export equal to the emulator's charges to the cent,
`reconcile` finds no difference, and an instance rented with the team's key outside Pulumi comes out as shadow spend.

Pulumi stamps its history with wall-clock times (today), while the emulator bills November 2026; the reports
date every event from the Vast-clock outputs the provider records (`vast_created_at`, `vast_state_since`,
`vast_seen_at` + `local_seen_at`), and deletes from the clock sample of the operation that made them
(`--vast-clock frozen`). Every up runs with `--refresh` so that each operation carries such a sample.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from emulator import Account, EmulatorServer
from emulator.bodies import ClockBody
from engine import Engine
from fleet.costs import cents
from reports.charges import env_name
from reports.cli import EXIT_DIFFERENCES, main
from tests.e2e.conftest import engine, pulumi_home  # noqa: F401 (fixtures)
from tests.reports.test_focus import check_against_spec
from vastclient import OfferQuery, VastClient
from vastguard.workspace import Workspace

pytestmark = pytest.mark.engine

TEAM = "ml-research"
MONTH = "2026-11"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
IMAGE = "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime"
TRAIN: dict[str, Any] = {"gpu": "RTX_3090", "count": 1, "image": IMAGE, "disk_gb": 32, "max_dph": 0.40}
EVAL: dict[str, Any] = {"gpu": "RTX_4090", "count": 1, "image": IMAGE, "disk_gb": 32, "max_dph": 0.90}


class Month:
    def __init__(self, ws: Workspace, srv: EmulatorServer, account: Account, api_key: str) -> None:
        self.ws, self.srv, self.account, self.api_key = ws, srv, account, api_key

    def at(self, days: float) -> None:
        self.srv.market.update_clock(ClockBody(set=(T0 + timedelta(days=days)).timestamp()))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.srv.market.clock.now(), UTC)

    def up(self, fleet: dict[str, Any], message: str) -> None:
        self.ws.set_fleet(TEAM, fleet)
        self.ws.cli.run("up", "--yes", "--skip-preview", "--refresh", "--message", message, stack=TEAM)

    def live(self) -> dict[str, tuple[int, str]]:
        """name -> (instance id, actual status) of the team's live instances, by the fleet's label."""
        return {(i.label or "").split(" ")[0].split("/")[-1]: (i.id, i.actual_status)
                for i in self.srv.market.all_instances(self.account)[0]}

    def instance_outputs(self) -> dict[str, dict[str, Any]]:
        export = json.loads(self.ws.cli.run("stack", "export", stack=TEAM).stdout)
        return {r["urn"].rsplit("::", 1)[-1]: r["outputs"] for r in export["deployment"].get("resources", [])
                if r["type"].endswith("vastai:Instance")}

    def billed(self) -> dict[int, Decimal]:
        """What the emulator charged the team's key this month, per instance (the ground truth)."""
        first, last = date(2026, 11, 1), date(2026, 11, 30)
        out: dict[int, Decimal] = defaultdict(Decimal)
        with VastClient(api_key=self.api_key, base_url=self.srv.url) as vast:
            for charge in vast.charges(first, last):
                assert charge.instance_id is not None
                out[charge.instance_id] += charge.amount
        return dict(out)

    def report(self, command: str, out: Path, *extra: str) -> tuple[int, Any]:
        backend = self.ws.cli.env["PULUMI_BACKEND_URL"]
        argv = [command, "--backend", backend, "--now", self.now().isoformat(), "--vast-clock", "frozen",
                "--no-progress", *extra]
        if command == "chargeback":
            code = main([*argv, "--month", MONTH, "--out", str(out)])
            return code, json.loads((out / "chargeback.json").read_text())
        code = main([*argv, "--format", "json", "--output", str(out)])
        return code, json.loads(out.read_text())


@pytest.fixture(scope="module")
def month(engine: Engine, pulumi_home: Path,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Month]:
    tmp = tmp_path_factory.mktemp("scripted-month")
    with EmulatorServer(port=0, seed=7, provision_delay=0, rate_limits=False, freeze_clock=True) as srv:
        srv.market.update_clock(ClockBody(set=T0.timestamp()))
        api_key = f"{TEAM}-{secrets.token_hex(16)}"
        account = srv.create_account(api_key=api_key, balance=100_000, username=TEAM)
        ws = Workspace.create(engine, tmp / "ws", state_dir=tmp / "state",
                              extra_env={"PULUMI_HOME": str(pulumi_home)})
        ws.init_team(TEAM, api_key=api_key, vast_url=srv.url)
        yield Month(ws, srv, account, api_key)


def test_a_scripted_month_of_ups_reconciles_to_the_cent(month: Month, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    month.at(0.25)
    month.up({"train": TRAIN, "eval": EVAL}, "train and eval boxes")
    first = month.live()
    assert {name: status for name, (_, status) in first.items()} == {"train-0": "running", "eval-0": "running"}

    month.at(3.5)
    month.up({"train": TRAIN, "eval": {**EVAL, "state": "stopped"}}, "park eval")
    assert month.live()["eval-0"] == (first["eval-0"][0], "stopped")

    month.at(8.75)
    month.up({"train": TRAIN, "eval": EVAL, "dev": {**TRAIN, "disk_gb": 16}}, "eval back, a dev box")
    assert month.live()["eval-0"] == (first["eval-0"][0], "running")
    assert "dev-0" in month.live()

    month.at(12.25)
    month.up({"train": {**TRAIN, "disk_gb": 64}, "eval": EVAL, "dev": {**TRAIN, "disk_gb": 16}},
             "bigger disk for train (a replacement)")
    replaced = month.live()["train-0"][0]
    assert replaced != first["train-0"][0]

    month.at(20.5)
    month.up({"train": {**TRAIN, "disk_gb": 64}, "dev": {**TRAIN, "disk_gb": 16}}, "drop eval")
    assert set(month.live()) == {"train-0", "dev-0"}

    # The provider recorded the contract's Vast-clock outputs: virtual November, not today's wall clock.
    outputs = month.instance_outputs()
    assert outputs["train-0"]["vast_created_at"] == (T0 + timedelta(days=12.25)).timestamp()
    assert outputs["dev-0"]["vast_created_at"] == (T0 + timedelta(days=8.75)).timestamp()
    assert outputs["dev-0"]["vast_state_since"] == (T0 + timedelta(days=8.75)).timestamp()
    for out in outputs.values():
        assert out["vast_seen_at"] == (T0 + timedelta(days=20.5)).timestamp()
        assert abs(out["local_seen_at"] - datetime.now(UTC).timestamp()) < 600

    month.at(29.5)  # train-0 and dev-0 still running "now"
    billed = month.billed()
    assert len(billed) == 4 and all(amount > 0 for amount in billed.values())
    total = sum(billed.values(), Decimal(0))

    monkeypatch.setenv(env_name(TEAM), month.api_key)  # the key reaches reconcile through the environment only
    vast_url = ["--vast-url", month.srv.url, "--month", MONTH]
    code, rec = month.report("reconcile", tmp_path / "clean.json", *vast_url, "--all")
    rows = rec["rows"]
    assert code == 0, rows
    assert {r["status"] for r in rows} == {"match"} and len(rows) == 4, rows
    for row in rows:
        assert Decimal(row["billed"]) == billed[row["instance_id"]]
        assert cents(Decimal(row["reconstructed"])) == cents(billed[row["instance_id"]]), row
        # Not just the same cents: only the emulator's sub-cent rounding of its daily rows apart (~1e-5 $).
        assert abs(Decimal(row["difference"])) < Decimal("0.001"), row
    (team,) = rec["teams"]
    assert Decimal(team["shadow"]) == 0 and Decimal(team["billed"]) == total

    # Spend and the month's invoice, from the same history, equal the emulator's charges to the cent.
    code, spend = month.report("spend", tmp_path / "spend.json", "--month", MONTH, "--by", "month")
    assert code == 0
    assert cents(Decimal(spend["known"])) == cents(total), spend
    code, chargeback = month.report("chargeback", tmp_path / "cb")
    assert code == 0
    (invoice,) = chargeback["invoices"]
    assert invoice["team"] == TEAM and cents(Decimal(invoice["total"])) == cents(total), invoice

    # The same month as FOCUS rows: the spec's required columns and types, and BilledCost to the cent.
    focus_dir = tmp_path / "focus"
    backend = month.ws.cli.env["PULUMI_BACKEND_URL"]
    assert main(["chargeback", "--backend", backend, "--now", month.now().isoformat(), "--vast-clock", "frozen",
                 "--no-progress", "--month", MONTH, "--format", "focus", "--out", str(focus_dir)]) == 0
    rows = check_against_spec((focus_dir / f"focus-cost-and-usage-{MONTH}.csv").read_text())
    assert cents(sum((Decimal(r["BilledCost"]) for r in rows), Decimal(0))) == cents(total)
    assert {int(r["ResourceId"]) for r in rows} == set(billed)

    # Rented with the team's key outside Pulumi: shadow spend, and exit 3 for CI.
    with VastClient(api_key=month.api_key, base_url=month.srv.url) as vast:
        offer = vast.search_offers(OfferQuery(gpu_names="RTX 3090", disk_gb=16, order=(("dph_total", "asc"),),
                                              limit=1))[0]
        shadow_id = vast.create_instance(offer.id, image=IMAGE, disk_gb=16, label="quick test")
    month.at(29.9)
    code, rec = month.report("reconcile", tmp_path / "shadow.json", *vast_url)
    assert code == EXIT_DIFFERENCES
    (shadow,) = rec["rows"]
    assert (shadow["instance_id"], shadow["status"], shadow["stack"]) == (shadow_id, "shadow", None)
    assert shadow["label"] == "quick test" and Decimal(shadow["billed"]) > 0
    (team,) = rec["teams"]
    assert Decimal(team["shadow"]) == Decimal(shadow["billed"])
