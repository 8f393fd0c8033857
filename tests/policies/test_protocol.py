"""The pack as the engine runs it: a child process on the analyzer gRPC protocol (see harness.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fleet.spend import TEAM_SPEND_NAME, TEAM_SPEND_TYPE
from policies.names import RuleName
from policies.platform_rules import PLATFORM_RULES, PlatformRule
from policies.report import dollars, pattern
from policies.rules import RULES, Rule
from tests.policies.fakes import UNKNOWN_NUMBER, UNKNOWN_STRING, contract_cost, inputs, outputs, quote, spend
from tests.policies.harness import AnalyzerProcess, Diagnostic, Resource, advisory, mandatory, team_file

StartPack = Callable[[str], AnalyzerProcess]


@pytest.fixture(scope="module")
def pack_for() -> Iterator[StartPack]:
    """One pack process per stack name (as the engine starts one per preview), killed after the module."""
    started: dict[str, AnalyzerProcess] = {}

    def start(stack: str) -> AnalyzerProcess:
        if stack not in started:
            started[stack] = AnalyzerProcess(stack=stack).start()
        return started[stack]

    yield start
    for process in started.values():
        process.close()


def instance(stack: str, name: str = "train-0", **props: Any) -> Resource:
    return Resource(name=name, stack=stack, props=inputs(stack, **props))


def reading(stack: str, **kwargs: Any) -> Resource:
    """The stack's vastai:TeamSpend (its spend reading), as the program declares one per team stack."""
    return Resource(name=TEAM_SPEND_NAME, stack=stack, props=spend(stack, **kwargs), type=TEAM_SPEND_TYPE)


def by_policy(diags: list[Diagnostic]) -> dict[str, list[Diagnostic]]:
    out: dict[str, list[Diagnostic]] = {}
    for d in diags:
        out.setdefault(d.policy, []).append(d)
    return out


def test_the_pack_describes_every_rule_with_its_level_and_schema(pack_for: StartPack) -> None:
    info = pack_for("ml-engineering").info()
    assert info.name == "vastguard"
    served = {p.name: p for p in info.policies}
    assert list(served) == [r.name.value for r in RULES] + [r.name.value for r in PLATFORM_RULES]
    registered: list[Rule | PlatformRule] = [*RULES, *PLATFORM_RULES]
    for rule in registered:
        policy = served[rule.name.value]
        assert policy.description == rule.description
        assert policy.enforcementLevel == (1 if rule.level.value == "mandatory" else 0)
        # Each block names what it governs: a team (fleet rules) or the platform stack (platform rules).
        assert ("team" if rule in RULES else "stack") in policy.configSchema.properties
        assert not policy.configSchema.required  # missing config reaches the rules, which explain it


def test_a_compliant_fleet_passes(pack_for: StartPack) -> None:
    pack = pack_for("ml-engineering")
    pack.configure(team_file("ml-engineering"))
    resources = [instance("ml-engineering", f"train-{i}") for i in range(4)]
    for resource in resources:
        assert pack.analyze(resource) == []
    assert pack.analyze_stack([*resources, reading("ml-engineering")]) == []


def test_a_gpu_off_the_allow_list_fails_with_the_documented_message(pack_for: StartPack) -> None:
    pack = pack_for("ml-engineering")
    pack.configure(team_file("ml-engineering"))
    diags = pack.analyze(instance("ml-engineering", gpu_name="H100 SXM", max_dph=2.0,
                                  quote=quote("H100 SXM", dph_total=1.9)))
    assert [(d.policy, d.level) for d in diags] == [("vast-gpu-allow-list", "mandatory")] * 2
    assert diags[0].message.endswith(
        "\nml-engineering: train-0: GPU H100 SXM is not on the team's GPU allow-list [RTX 4090, A100]; "
        "use one of those or request a policy change")


def test_unknowns_at_preview_are_judged_at_the_worst_case_not_skipped(pack_for: StartPack) -> None:
    """The SDK would turn an UnknownValueError into an advisory "can't run policy during preview"."""
    pack = pack_for("ml-engineering")
    pack.configure(team_file("ml-engineering"))
    diags = pack.analyze(instance("ml-engineering", gpu_name=UNKNOWN_STRING, max_dph=UNKNOWN_NUMBER,
                                  image=UNKNOWN_STRING, quote=UNKNOWN_STRING))
    assert not any("can't run policy" in d.message for d in diags)
    found = by_policy(mandatory(diags))
    assert set(found) == {"vast-gpu-allow-list", "vast-instance-max-dph", "vast-image-allowed-registries"}
    assert pattern(RuleName.INSTANCE_MAX_DPH, "unknown").search(found["vast-instance-max-dph"][0].message)
    stack = pack.analyze_stack([Resource("train-0", inputs(max_dph=UNKNOWN_NUMBER, quote=None), "ml-engineering"),
                                reading("ml-engineering")])
    assert {d.policy for d in mandatory(stack)} == {"vast-daily-budget"}
    assert pattern(RuleName.DAILY_BUDGET, "unbounded").search(stack[0].message)
    assert stack[0].urn.endswith("::train-0")


def test_no_team_file_denies_every_rule_and_names_the_file(pack_for: StartPack) -> None:
    pack = pack_for("new-team")
    pack.configure(None)
    resource_diags = pack.analyze(instance("new-team"))
    assert {d.policy for d in mandatory(resource_diags)} == {r.name.value for r in RULES if r.resource}
    stack_diags = pack.analyze_stack([])
    binding = by_policy(stack_diags)["vast-team-binding"][0]
    assert binding.level == "mandatory"
    assert pattern(RuleName.TEAM_BINDING, "config-missing", stack="new-team").search(binding.message)
    assert "policies/teams/new-team.json" in binding.message and "vastguard team add new-team" in binding.message


def test_another_teams_file_denies(pack_for: StartPack) -> None:
    pack = pack_for("data-science")
    pack.configure(team_file("ml-research"))
    diags = by_policy(pack.analyze_stack([instance("data-science")]))
    binding = [d.message for d in diags["vast-team-binding"]]
    assert pattern(RuleName.TEAM_BINDING, "stack-not-governed", team="ml-research", stack="data-science").search(
        binding[0])
    assert pattern(RuleName.TEAM_BINDING, "team-mismatch", value="data-science").search(binding[1])


def test_budget_from_quotes_and_actuals_equals_fleet_costs(pack_for: StartPack) -> None:
    pack = pack_for("data-science")
    pack.configure(team_file("data-science"))
    props = [inputs("data-science", max_dph=0.3, quote=quote(dph_total=0.29)),
             outputs("data-science", dph_total=0.21, max_dph=0.3)]
    resources = [Resource(f"nb-{i}", p, "data-science") for i, p in enumerate(props)]
    diags = by_policy(pack.analyze_stack([*resources, reading("data-science", kinds=("day",))]))
    expected = dollars(contract_cost(props).daily)  # (0.29 + 0.21) x 24 = $12.00 > $10
    assert expected == "$12.00"
    assert [d.level for d in diags["vast-daily-budget"]] == ["mandatory"]
    assert pattern(RuleName.DAILY_BUDGET, "over-actual", spent="$0.00", value=expected, limit="$10.00").search(
        diags["vast-daily-budget"][0].message)
    assert [d.level for d in diags["vast-daily-budget-warning"]] == ["advisory"]
    assert set(diags) == {"vast-daily-budget", "vast-daily-budget-warning"}


def test_all_in_the_config_file_sets_every_level(pack_for: StartPack) -> None:
    pack = pack_for("ml-engineering")
    pack.configure({**team_file("ml-engineering"), "all": "advisory"})
    diags = pack.analyze(instance("ml-engineering", disk_gb=400))
    assert [(d.policy, d.level) for d in diags] == [("vast-disk-max-size", "advisory")]
    pack.configure({**team_file("ml-engineering"), "vast-disk-max-size": "disabled"})
    assert pack.analyze(instance("ml-engineering", disk_gb=400)) == []


def test_exceptions_relax_their_rule_and_are_reported_as_advisory(pack_for: StartPack) -> None:
    pack = pack_for("ml-research")
    config = team_file("ml-research")
    active = {"allow": 6.0, "reason": "H100 x2 benchmark", "approver": "cto", "expires": "2999-12-31"}
    expired = {"allow": 1000, "reason": "old disk", "approver": "cto", "expires": "2000-01-01"}
    config["vast-instance-max-dph"]["exceptions"] = [active]
    config["vast-disk-max-size"]["exceptions"] = [expired]
    config["vast-policy-exceptions"]["exceptions"] = [
        {"rule": "vast-instance-max-dph", **active}, {"rule": "vast-disk-max-size", **expired}]
    pack.configure(config)
    big = instance("ml-research", gpu_name="H100 SXM", num_gpus=2, max_dph=5.5, disk_gb=800,
                   quote=quote("H100 SXM", dph_total=5.2))
    diags = pack.analyze(big)
    assert [d.policy for d in diags] == ["vast-disk-max-size"]  # max_dph relaxed; the expired disk grant ignored
    stack = [big, reading("ml-research", kinds=("day",))]
    report = [d for d in pack.analyze_stack(stack) if d.policy == "vast-policy-exceptions"]
    assert [d.level for d in report] == ["advisory", "advisory"]
    assert pattern(RuleName.POLICY_EXCEPTIONS, "active", rule="vast-instance-max-dph").search(report[0].message)
    assert pattern(RuleName.POLICY_EXCEPTIONS, "expired", rule="vast-disk-max-size").search(report[1].message)
    assert mandatory(pack.analyze_stack(stack)) == []
    assert advisory(pack.analyze_stack(stack))
