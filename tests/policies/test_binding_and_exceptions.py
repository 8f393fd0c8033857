"""Team binding (which stacks and instances a team file governs) and the exception report."""

from __future__ import annotations

from datetime import date
from typing import Any

from policies import rules
from policies.names import RuleName
from policies.report import pattern
from tests.policies.fakes import (
    TODAY,
    UNKNOWN_STRING,
    block,
    collect,
    inputs,
    messages,
    stack_args,
)


def bind(instances: dict[str, dict[str, Any]], *, team: str | None, stack: str, **config: Any) -> list[str]:
    args = stack_args(instances, block(team, RuleName.TEAM_BINDING, **config), stack=stack)
    return messages(collect(rules.team_binding, args))


def test_a_team_file_governs_its_own_stack() -> None:
    assert bind({"train-0": inputs("data-science")}, team="data-science", stack="data-science") == []


def test_another_teams_file_applied_to_a_stack_denies() -> None:
    """ml-research's generous limits must never govern data-science's stack."""
    found = bind({"train-0": inputs("data-science")}, team="ml-research", stack="data-science")
    assert found[0] == (
        "ml-research: policies/teams/ml-research.json governs stacks [ml-research], not stack data-science; "
        "preview stack data-science with its own team's file, or add data-science to the vast-team-binding "
        "stacks of policies/teams/ml-research.json"
    )
    assert pattern(RuleName.TEAM_BINDING, "team-mismatch", value="data-science").search(found[1])


def test_a_team_may_govern_several_stacks() -> None:
    found = bind({"train-0": inputs("ml-research")}, team="ml-research", stack="ml-research-dev",
                 stacks=["ml-research", "ml-research-dev"])
    assert found == []


def test_an_instance_labelled_with_another_team_denies_by_urn() -> None:
    args = stack_args({"ok-0": inputs("ml-research"), "stray-0": inputs("ml-engineering")},
                      block("ml-research", RuleName.TEAM_BINDING), stack="ml-research")
    found = collect(rules.team_binding, args)
    assert len(found) == 1
    assert found[0].urn is not None and found[0].urn.endswith("::stray-0")
    assert found[0].message == (
        "ml-research: stray-0: its team property is ml-engineering, not ml-research; set vastguard:team: "
        "ml-research in stacks/Pulumi.ml-research.yaml, or preview with that team's own policy file"
    )


def test_an_unknown_or_missing_team_property_denies() -> None:
    no_team = inputs("ml-research")
    del no_team["team"]
    found = bind({"a-0": {**inputs("ml-research"), "team": UNKNOWN_STRING}, "b-0": no_team},
                 team="ml-research", stack="ml-research")
    assert [bool(pattern(RuleName.TEAM_BINDING, "team-mismatch", value=v).search(m))
            for v, m in zip(("unknown at preview", "missing"), found, strict=True)] == [True, True]


def test_an_empty_stack_without_a_team_file_denies() -> None:
    assert bind({}, team=None, stack="rogue") == [
        "stack rogue: no team policy config for vast-team-binding; create policies/teams/rogue.json with "
        "`vastguard team add rogue` and preview with --policy-pack-config policies/teams/rogue.json"
    ]


def test_a_binding_block_missing_its_stacks_denies() -> None:
    config = block("ml-research", RuleName.TEAM_BINDING)
    del config["stacks"]
    args = stack_args({}, config, stack="ml-research")
    assert pattern(RuleName.TEAM_BINDING, "config-invalid", team="ml-research").search(
        messages(collect(rules.team_binding, args))[0])


# -- exceptions report --------------------------------------------------------------------------------------------

GRANTS: list[dict[str, Any]] = [
    {"rule": "vast-instance-max-dph", "allow": 3.0, "reason": "benchmark sprint", "approver": "cto",
     "expires": "2026-06-30"},
    {"rule": "vast-gpu-allow-list", "allow": "H100_SXM", "reason": "trial", "approver": "platform-lead",
     "expires": "2026-06-14"},
]


def report_exceptions(grants: list[dict[str, Any]], today: date = TODAY) -> list[str]:
    args = stack_args({}, block("ml-engineering", RuleName.POLICY_EXCEPTIONS, exceptions=grants))
    return messages(collect(rules.policy_exceptions, args, today=today))


def test_active_and_expired_exceptions_are_reported() -> None:
    assert report_exceptions(GRANTS) == [
        "ml-engineering: exception to vast-instance-max-dph active until 2026-06-30: allows 3 "
        "(reason: benchmark sprint; approved by cto)",
        "ml-engineering: exception to vast-gpu-allow-list allowing H100_SXM expired on 2026-06-14 and is ignored; "
        "remove it from policies/teams/ml-engineering.json or ask platform-lead to renew it",
    ]


def test_an_exception_is_active_through_its_expiry_day() -> None:
    assert pattern(RuleName.POLICY_EXCEPTIONS, "active").search(report_exceptions(GRANTS, date(2026, 6, 30))[0])
    assert pattern(RuleName.POLICY_EXCEPTIONS, "expired").search(report_exceptions(GRANTS, date(2026, 7, 1))[0])


def test_no_exceptions_no_report() -> None:
    assert report_exceptions([]) == []


def test_the_exception_policy_is_advisory_and_the_limits_mandatory() -> None:
    levels = {r.name: r.level.value for r in rules.RULES}
    assert levels.pop(RuleName.POLICY_EXCEPTIONS) == "advisory"
    assert levels.pop(RuleName.DAILY_BUDGET_WARNING) == "advisory"
    assert set(levels.values()) == {"mandatory"}
