"""The official `vastai` CLI (1.9.1) renting at a bid and changing it against the emulator, unchanged:
`search offers --type bid`, `create instance --bid_price`, `change bid` (with and without `--price`), and the
instance outbid and resumed by competing demand placed through the control plane."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from emulator import EmulatorServer
from emulator.testing import Control, make_account
from tests.emulator.official_cli import Cli


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with EmulatorServer(port=0, seed=78, provision_delay=0) as server:
        account = make_account(server, balance=25, username="cli-bidder")
        yield Cli.at(server.url, account.api_key, tmp_path_factory.mktemp("vastai-home"))


def _row(cli: Cli, instance_id: int) -> dict[str, object]:
    row: dict[str, object] = cli.raw("show", "instance", str(instance_id))
    return row


def test_create_instance_at_a_bid_and_change_it(cli: Cli) -> None:
    control = Control(cli.url)
    control.freeze("2026-06-15T08:00:00Z")
    [offer] = cli.raw("search", "offers", "gpu_name=RTX_3090", "--type", "bid", "-o", "dph_total", "--limit", "1")
    assert offer["is_bid"] is True and offer["dph_base"] == offer["min_bid"]
    bid = round(offer["min_bid"] + 0.02, 3)
    created = cli.raw("create", "instance", str(offer["id"]), "--image", "pytorch/pytorch:latest", "--disk", "16",
                      "--bid_price", str(bid), "--label", "cli-bid")
    assert created["success"] is True
    instance_id = created["new_contract"]
    row = _row(cli, instance_id)
    assert (row["actual_status"], row["is_bid"], row["dph_base"]) == ("running", True, bid)

    # Someone bids more at 09:00 until 10:00: outbid then, running again after, by itself.
    demand = control.demand(instance_id=instance_id, kind="bid", price=bid + 0.05,
                            start="2026-06-15T09:00:00Z", end="2026-06-15T10:00:00Z")
    control.advance(1.5 * 3600)
    row = _row(cli, instance_id)
    assert (row["actual_status"], row["intended_status"], row["next_state"]) == ("stopped", "stopped", "stopped")
    control.advance(3600)
    assert _row(cli, instance_id)["actual_status"] == "running"
    assert demand["active"] is False  # it was placed for later

    out = cli.run("change", "bid", str(instance_id), "--price", str(bid + 0.1)).stdout
    assert "bid price changed" in out
    assert _row(cli, instance_id)["dph_base"] == pytest.approx(bid + 0.1)
    # Without --price the CLI sends null, and Vast uses a winning bid: here the host's floor (no one else bids).
    cli.run("change", "bid", str(instance_id))
    assert _row(cli, instance_id)["dph_base"] == pytest.approx(offer["min_bid"])


def test_change_bid_of_an_on_demand_instance_is_refused_with_vasts_message(cli: Cli) -> None:
    [offer] = cli.raw("search", "offers", "gpu_name=RTX_4090", "-o", "dph_total", "--limit", "1")
    created = cli.raw("create", "instance", str(offer["id"]), "--image", "pytorch/pytorch:latest", "--disk", "16")
    result = cli.run("change", "bid", str(created["new_contract"]), "--price", "0.2", ok=False)
    assert "Traceback" not in result.stderr
    assert "Can't change price of on-demand contract." in result.stdout + result.stderr
    assert json.loads(json.dumps(_row(cli, created["new_contract"])))["is_bid"] is False
