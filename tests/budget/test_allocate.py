"""Prepaid credit, in-process against the emulator's frozen clock: top-ups to what is left of the budget (less the
storage the team's disks bill to the period's end), idempotent in a row and twice at once, Vast stopping the team
at zero, and the month closed with its unused credit reclaimed, so the month's transfers sum to its spend."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import pytest

from budget.guard import TeamOutcome
from fleet.budget_log import TransferIntent, ledger_key
from fleet.costs import cents
from tests.budget.world import World

TEAM = "vision"
PREPAID = {"period": "month", "reclaim": True}


def month_spend(place: World, first: date, last: date) -> Decimal:
    with place.client(TEAM) as vast:
        return sum((c.amount for c in vast.charges(first, last)), Decimal(0))


def allocate(place: World, who: str = "allocate") -> TeamOutcome:
    (outcome,) = place.allocator(who).run(place.policies(TEAM))
    assert not outcome.errors, outcome.errors
    return outcome


def test_allocation_tops_up_to_the_budget_once_whatever_runs_at_the_same_time(place: World) -> None:
    place.add_team(TEAM, daily=10, monthly=50, prepaid=PREPAID)
    allocate(place)
    assert place.balance(TEAM) == Decimal(50)
    allocate(place)  # in a row: nothing more
    (first,) = place.log.transfers(TEAM)
    assert first.intent.kind == "top-up"
    assert (first.intent.amount, first.intent.balance_before) == (Decimal(50), Decimal(0))
    assert first.sent and first.outcome is not None and first.outcome.balance_after == 50
    assert first.intent.by.who == "allocate" and first.intent.period == "month:2026-11@UTC"

    instance = place.rent(TEAM, label="train")
    place.at(30)
    spent = month_spend(place, date(2026, 11, 1), date(2026, 11, 30))
    with place.client(TEAM) as vast:
        inst = vast.get_instance(instance)
    assert inst is not None and inst.storage_cost is not None and inst.disk_space is not None
    reserve = Decimal(str(inst.storage_cost)) * Decimal(str(inst.disk_space)) / 720 * (29 * 24 - 6)
    # Two allocations at once (two CI jobs, a retried cron): one moves credit, the other finds it done.
    outcomes: list[TeamOutcome] = []
    runs = [threading.Thread(target=lambda who=who: outcomes.extend(place.allocator(who).run(place.policies(TEAM))))
            for who in ("job-1", "job-2")]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert all(not o.errors for o in outcomes), [o.errors for o in outcomes]
    transfers = place.log.transfers(TEAM)
    assert len(transfers) == 2, transfers
    reclaim = transfers[1].intent
    assert reclaim.kind == "reclaim" and transfers[1].sent
    # What is left is the budget less what was spent less the storage the disk will bill by the month's end.
    assert abs(place.balance(TEAM) - (Decimal(50) - spent - reserve)) <= Decimal("0.01")


def test_vast_stops_the_team_at_its_budget_and_the_months_transfers_sum_to_its_spend(place: World) -> None:
    place.add_team(TEAM, daily=10, monthly=20, prepaid=PREPAID)
    allocate(place)
    place.rent(TEAM, label="train")
    place.rent(TEAM, label="eval")
    for day in range(1, 30):  # an allocation a day, as the scheduled workflow would do more often
        place.at(24 * day)
        allocate(place)
    place.at(24 * 30 + 0.5)  # December: the allocation closes November
    outcome = allocate(place)
    assert any(line.startswith("month:2026-11@UTC: ") for line in outcome.lines), outcome.lines
    spent = month_spend(place, date(2026, 11, 1), date(2026, 11, 30))
    assert spent <= Decimal(20) + Decimal("0.01"), spent  # Vast stopped the team at the budget
    assert spent > Decimal(19), spent  # ... and not much before it
    november = [t for t in place.log.transfers(TEAM) if t.intent.period == "month:2026-11@UTC" and t.sent]
    given = sum((t.intent.amount for t in november if t.intent.kind == "top-up"), Decimal(0))
    taken = sum((t.intent.amount for t in november if t.intent.kind == "reclaim"), Decimal(0))
    assert abs((given - taken) - spent) < Decimal("0.01"), (given, taken, spent)
    assert any(t.intent.closes for t in november)
    december = [t for t in place.log.transfers(TEAM) if t.intent.period == "month:2026-12@UTC"]
    assert [t.intent.kind for t in december] == ["top-up"]
    assert cents(place.balance(TEAM)) <= Decimal(20)


def test_a_transfer_whose_run_died_is_settled_from_vasts_audit_log(place: World) -> None:
    place.add_team(TEAM, daily=10, monthly=50, prepaid=PREPAID)
    allocate(place)
    # A run took ledger slot #2 for a top-up of $5 and died before sending it (or before recording it).
    (done,) = place.log.transfers(TEAM)
    dead = TransferIntent.model_validate({**done.intent.model_dump(), "seq": 2, "amount": "5.00",
                                          "at": place.now().timestamp()})
    assert place.log.claim_intent(dead)
    place.at(0.05)
    outcome = allocate(place)
    assert any("another allocation is moving credit (ledger #2" in line for line in outcome.lines)
    place.at(1)  # later than the time a transfer in flight keeps its slot
    outcome = allocate(place)
    settled = place.log.transfers(TEAM)[1]
    assert settled.outcome is not None and settled.outcome.status == "not-sent"  # Vast's log has no such transfer
    assert any("settled as not-sent" in line for line in outcome.lines)
    assert place.log.bucket.read(ledger_key(TEAM, 2, outcome=True))


@pytest.mark.parametrize("missing", ["VASTGUARD_PLATFORM_KEY", "VASTGUARD_KEY_VISION"])
def test_without_its_keys_nothing_is_moved_and_the_message_names_them(place: World, missing: str) -> None:
    place.add_team(TEAM, daily=10, monthly=50, prepaid=PREPAID)
    del place.env[missing]
    (outcome,) = place.allocator().run(place.policies(TEAM))
    assert outcome.errors and missing in outcome.errors[0] and "nothing was moved" in outcome.errors[0]
    assert place.log.transfers(TEAM) == []
