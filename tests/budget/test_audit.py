"""`vastguard audit` beyond Pulumi: Vast's own audit log (each key's creates, destroys and transfers, console and
CLI included) and the budget log's records merged with stack history, each marked with what it went through."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from budget.alerts import Alerter
from fleet.budget_log import Actor, Transfer, TransferIntent, TransferOutcome
from reports.beyond import vast_audit_events
from reports.cli import main
from reports.models import Actor as Who
from reports.models import AuditEvent, InstanceChange, StackFold
from tests.budget.world import World
from vastclient.models import AuditEntry

TEAM = "vision"


def test_creates_and_destroys_are_marked_through_the_stack_that_made_them_or_outside_pulumi() -> None:
    at = datetime(2026, 11, 3, tzinfo=UTC)
    fold = StackFold(project="vastguard", stack=TEAM, team=TEAM, timelines=(), events=(AuditEvent(
        project="vastguard", stack=TEAM, team=TEAM, sequence=1, kind="update", started=at, ended=at,
        result="succeeded", message="", actor=Who(), changes=(
            InstanceChange(name="train-0", instance_id=11, action="created"),
            InstanceChange(name="old-0", instance_id=10, action="deleted"))),))
    entries = [
        AuditEntry(id=1, api_route="api.instance.create", args={"new_contract": 11, "id": 5, "label": "x"},
                   created_at=at.timestamp(), api_key_id=7, user_id=3, ip_address="10.0.0.1"),
        AuditEntry(id=2, api_route="api.instance.create", args={"new_contract": 12, "label": "quick test"},
                   created_at=at.timestamp(), api_key_id=7, user_id=3, ip_address="10.0.0.9"),
        AuditEntry(id=3, api_route="api.instance.destroy", args={"id": 10}, created_at=at.timestamp()),
        AuditEntry(id=4, api_route="api.instance.destroy", args={"id": 12}, created_at=at.timestamp()),
        AuditEntry(id=5, api_route="api.instance.create",
                   args={"new_contract": 13, "label": "[vg:vision/train-1#deadbeef]"}, created_at=at.timestamp()),
        AuditEntry(id=6, api_route="api.user.transfer_credit", args={"recipient": "100002", "amount": 25.0},
                   created_at=at.timestamp()),
        AuditEntry(id=7, api_route="api.user.transfer_credit", args={"recipient": "100002", "amount": 9.99},
                   created_at=at.timestamp()),
        AuditEntry(id=8, api_route="api.apikey.create", args={"name": "laptop", "key_id": 9},
                   created_at=at.timestamp()),
    ]
    ledger = [Transfer(intent=TransferIntent(
        seq=4, team=TEAM, team_account=100002, recipient="100002", period="month:2026-11@UTC", kind="top-up",
        amount=Decimal(25), balance_before=Decimal(0), budget=Decimal(50), spent=Decimal(0), reserve=Decimal(0),
        at=at.timestamp() - 1, by=Actor(who="ci", command="vastguard budget allocate")),
        outcome=TransferOutcome(seq=4, status="sent"))]
    events = vast_audit_events({TEAM: entries}, [fold], ledger)
    through = {e.sequence: e.through for e in events}
    assert through == {1: "stack vision", 2: "outside Pulumi", 3: "stack vision", 4: "outside Pulumi",
                       5: "outside Pulumi (tagged for stack vision, not in its history)",
                       6: "vastguard budget allocate (vision, ledger #4)", 7: "outside vastguard",
                       8: "outside Pulumi"}
    assert {e.source for e in events} == {"vast"}
    assert events[1].actor.who == "Vast key #7 (user 3, 10.0.0.9)"


@pytest.mark.parametrize("with_vast", [True, False])
def test_audit_merges_vasts_log_and_the_budget_log_with_stack_history(place: World, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      with_vast: bool) -> None:
    place.add_team(TEAM, daily=2, monthly=50, action="pause", prepaid={"period": "month", "reclaim": True})
    (outcome,) = place.allocator().run(place.policies(TEAM))
    assert not outcome.errors
    shadow = place.rent(TEAM, label="quick test")  # with the team's key, outside Pulumi
    place.at(20)
    place.guard(Alerter()).run(place.policies(TEAM))
    (place.root / "state" / ".pulumi").mkdir(exist_ok=True)  # a backend whose stacks have no history yet
    for name, value in place.env.items():
        monkeypatch.setenv(name, value)
    argv = ["audit", "--backend", f"file://{place.root / 'state'}", "--no-progress", "--format", "json",
            "--vast-url", place.srv.url]
    assert main([*argv, "--vast"] if with_vast else argv) == 0
    events = json.loads(capsys.readouterr().out)["events"]
    kinds = {(e["source"], e["kind"]): e for e in events}
    top_up = kinds[("vastguard", "credit top-up")]
    assert top_up["through"] == "vastguard budget allocate (ledger #1)" and "$50.00" in top_up["message"]
    assert ("vastguard", "guard pause") in kinds and ("vastguard", "guard stop") in kinds
    if with_vast:
        assert kinds[("vast", "user.transfer_credit")]["through"] == "vastguard budget allocate (vision, ledger #1)"
        rent = kinds[("vast", "instance.create")]
        assert rent["through"] == "outside Pulumi" and str(shadow) in rent["message"]
    else:
        assert not any(e["source"] == "vast" for e in events)
