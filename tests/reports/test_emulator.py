"""`reconcile` against the Vast.ai emulator over real HTTP, on its frozen virtual clock.

A month of rents, stops, starts and destroys is made through the real client at known virtual times; the
history a provider would have left is written beside it (the synthetic writer plays the provider, recording
the contract's Vast-clock fields). Reconstructed spend must then equal the emulator's charges to the cent, and
an instance rented with the team's key outside any stack must come out as shadow spend. The same kind of
month through the real engine and provider is tests/e2e/test_scripted_month.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from emulator.bodies import ClockBody
from emulator.server import EmulatorServer
from emulator.testing import EmulatorAccount, make_account
from fleet.costs import cents
from reports.charges import env_name
from reports.cli import EXIT_DIFFERENCES, main
from tests.reports.synthetic import Rented, StackWriter
from vastclient import OfferQuery, VastClient

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WALL = datetime(2026, 12, 24, 14, tzinfo=UTC)  # when the operations "ran": the virtual clock is elsewhere


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(port=0, seed=11, provision_delay=0, rate_limits=False, freeze_clock=True) as srv:
        srv.market.update_clock(ClockBody(set=T0.timestamp()))
        yield srv


class Month:
    """Drives the emulator and the history side by side at the same virtual moments."""

    def __init__(self, srv: EmulatorServer, root: Path, team: str, account: EmulatorAccount) -> None:
        self.srv, self.account = srv, account
        self.vast = VastClient(api_key=account.api_key, base_url=srv.url)
        self.writer = StackWriter(root, team, team)
        self.wall = WALL

    def at(self, days: float) -> None:
        moment = T0 + timedelta(days=days)
        self.srv.market.update_clock(ClockBody(set=moment.timestamp()))
        self.writer.frozen_at = moment

    def rent(self, name: str, gpu: str, disk: float, *, in_stack: bool = True) -> int:
        offers = self.vast.search_offers(OfferQuery(gpu_names=gpu, disk_gb=disk, order=(("dph_total", "asc"),),
                                                    limit=5))
        iid = self.vast.create_instance(offers[0].id, image="pytorch/pytorch:2.4.0", disk_gb=disk,
                                        label=f"{self.writer.team}/{name} [vg:{self.writer.stack}/{name}]")
        inst = self.vast.get_instance(iid)
        assert inst is not None and inst.actual_status == "running"
        assert inst.dph_total is not None and inst.storage_cost is not None
        if in_stack:
            self.writer.rent(Rented(name, iid, inst.gpu_name or gpu, inst.dph_total, inst.storage_cost, disk_gb=disk))
        return iid

    def stop(self, name: str) -> None:
        self.vast.stop(self.writer.instances[name].instance_id)
        self.writer.set_state(name, "stopped")

    def start(self, name: str) -> None:
        self.vast.start(self.writer.instances[name].instance_id)
        self.writer.set_state(name, "running")

    def destroy(self, name: str) -> None:
        self.vast.destroy(self.writer.instances[name].instance_id)
        self.writer.remove(name)

    def up(self, **kwargs: object) -> None:
        self.writer.record(start=self.wall, refresh=True, **kwargs)  # type: ignore[arg-type]
        self.wall += timedelta(minutes=3)


def reconcile_cli(root: Path, srv: EmulatorServer, out: Path, *extra: str) -> tuple[int, Any]:
    now = datetime.fromtimestamp(srv.market.clock.now(), UTC).isoformat()
    code = main(["reconcile", "--backend", f"file://{root}", "--month", "2026-11", "--vast-url", srv.url,
                 "--now", now, "--vast-clock", "frozen", "--no-progress", "--format", "json", "--output", str(out),
                 *extra])
    return code, json.loads(out.read_text())


def test_a_month_on_the_emulator_reconciles_to_the_cent_and_shows_shadow_spend(
        emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    research = make_account(emulator, balance=100_000, username="ml-research")
    monkeypatch.setenv(env_name("ml-research"), research.api_key)
    month = Month(emulator, tmp_path / "state", "ml-research", research)

    month.at(0.25)
    month.rent("train-0", "H100 SXM", 200)
    month.rent("train-1", "A100 SXM4", 100)
    month.up(message="first fleet")
    month.at(2.5)
    month.rent("dev-0", "RTX 4090", 40)
    month.stop("train-1")
    month.up(message="dev box, park train-1")
    month.at(9.75)
    month.destroy("train-0")
    month.rent("train-0", "H100 SXM", 400)  # replaced: a new Vast instance under the same name
    month.start("train-1")
    month.up(message="bigger disk for train-0")
    month.at(21.5)
    month.destroy("dev-0")
    month.up(message="drop dev box")
    month.at(29.5)  # train-0 and train-1 still running at "now"

    code, report = reconcile_cli(tmp_path / "state", emulator, tmp_path / "clean.json", "--all")
    rows = report["rows"]
    assert code == 0, rows
    assert {r["status"] for r in rows} == {"match"} and len(rows) == 4
    for row in rows:
        assert cents(Decimal(row["reconstructed"])) == cents(Decimal(row["billed"])), row
    (team,) = report["teams"]
    assert Decimal(team["billed"]) > 1000 and Decimal(team["shadow"]) == 0

    # The month's invoice and spend, from the same history, equal what the emulator charged, to the cent.
    now = datetime.fromtimestamp(emulator.market.clock.now(), UTC).isoformat()
    common = ["--backend", f"file://{tmp_path / 'state'}", "--now", now, "--vast-clock", "frozen", "--no-progress"]
    assert main(["chargeback", "--month", "2026-11", "--out", str(tmp_path / "cb"), *common]) == 0
    (invoice,) = json.loads((tmp_path / "cb" / "chargeback.json").read_text())["invoices"]
    assert cents(Decimal(invoice["total"])) == cents(Decimal(team["billed"]))
    assert main(["spend", "--month", "2026-11", "--by", "month", "--format", "json", "--output",
                 str(tmp_path / "spend.json"), *common]) == 0
    spend = json.loads((tmp_path / "spend.json").read_text())
    assert cents(Decimal(spend["known"])) == cents(Decimal(team["billed"]))

    # Someone rents with the team's key outside Pulumi: shadow spend, and a non-zero exit for CI.
    shadow_id = month.rent("quick-test", "RTX 4090", 32, in_stack=False)
    month.at(29.9)
    code, report = reconcile_cli(tmp_path / "state", emulator, tmp_path / "shadow.json")
    rows = report["rows"]
    assert code == EXIT_DIFFERENCES
    (shadow,) = rows
    assert shadow["instance_id"] == shadow_id and shadow["status"] == "shadow" and shadow["stack"] is None
    assert Decimal(shadow["billed"]) > 0
    month.vast.close()


def test_missing_team_key_is_an_error_that_names_the_variable(emulator: EmulatorServer, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    StackWriter(tmp_path, "data-science", "data-science").record(start=WALL)
    monkeypatch.delenv(env_name("data-science"), raising=False)
    code = main(["reconcile", "--backend", f"file://{tmp_path}", "--month", "2026-11", "--vast-url", emulator.url,
                 "--no-progress"])
    assert code == 1
    assert "VASTGUARD_KEY_DATA_SCIENCE" in capsys.readouterr().err
