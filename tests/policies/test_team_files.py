"""The committed team files, their validation (drift between blocks), and the message catalogue."""

from __future__ import annotations

import io
import json
import string
from pathlib import Path
from typing import Any

import pytest

from policies.config import config_schema
from policies.names import PlatformRuleName, RuleName
from policies.pack import build_policies
from policies.report import COMMON, MESSAGES, pattern, render
from policies.rules import RULES, RULES_BY_NAME
from policies.teamfile import TEAMS_DIR, TEMPLATE, TeamFileError, check_files, load_team_file, parse_team_file

SEEDS = {
    # team: (allow-list, max instances, daily budget, max $/h), as in the seeds' TEAM_CONFIGS
    "ml-research": (["A100", "H100_SXM"], 8, 200, 4.00),
    "ml-engineering": (["RTX_4090", "A100"], 4, 50, 2.00),
    "data-science": (["RTX_4090", "RTX_3090"], 2, 10, 0.30),
}


def raw(team: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TEAMS_DIR / f"{team}.json").read_text())
    return data


@pytest.mark.parametrize("team", sorted(SEEDS))
def test_seed_team_files_carry_the_seeds_limits(team: str) -> None:
    gpus, instances, budget, dph = SEEDS[team]
    tf = load_team_file(TEAMS_DIR / f"{team}.json")
    assert (tf.team, tf.stacks) == (team, [team])
    assert tf.gpu_allow_list.allowed_gpus == gpus
    assert tf.max_instances.max_instances == instances
    assert tf.daily_budget.daily_budget == tf.daily_budget_warning.daily_budget == budget
    assert tf.instance_max_dph.max_dph == dph
    assert tf.host_min_reliability.min_reliability == 0.95
    assert tf.verified_hosts_only.allow_unverified is False


def test_the_template_has_the_conservative_onboarding_defaults() -> None:
    tf = load_team_file(TEMPLATE)
    assert tf.gpu_allow_list.allowed_gpus == ["RTX_4090"]
    assert tf.max_instances.max_instances == 2
    assert tf.daily_budget.daily_budget == 10


def test_every_file_in_policies_teams_is_valid_and_round_trips() -> None:
    files = sorted(TEAMS_DIR.glob("*.json"))
    assert {f.stem for f in files} >= {*SEEDS, "_template"}
    for path in files:
        tf = load_team_file(path)
        assert tf.dumps() == path.read_text(), f"{path} is not in canonical form"
    out = io.StringIO()
    assert check_files(files, out=out) == 0


def test_team_files_have_a_block_for_every_policy_and_only_schema_properties() -> None:
    names = {p.name for p in build_policies()} - {r.value for r in PlatformRuleName}  # the platform's own file
    for team in SEEDS:
        data = raw(team)
        assert set(data) == names
        for rule, body in data.items():
            schema = config_schema(RULES_BY_NAME[RuleName(rule)].config).properties
            assert set(body) <= set(schema), rule


def problems(data: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(TeamFileError) as err:
        parse_team_file(data, source="t.json", **kwargs)
    return err.value.problems


def test_a_block_naming_another_team_is_drift() -> None:
    data = raw("data-science")
    data["vast-daily-budget"]["team"] = "ml-research"
    assert problems(data) == [
        "vast-daily-budget.team is 'ml-research' but vast-team-binding.team is 'data-science'"]


def test_a_missing_block_and_a_misspelt_policy_are_reported_together() -> None:
    data = raw("data-science")
    data["vast-max-gpu"] = data.pop("vast-max-gpus")
    found = problems(data)
    assert "vast-max-gpus: block missing; copy it from policies/teams/_template.json" in found
    assert any(p.startswith("vast-max-gpu: not a vastguard policy; valid keys: all, vast-team-binding") for p in found)


def test_a_missing_limit_and_an_unknown_field_are_reported() -> None:
    data = raw("data-science")
    del data["vast-instance-max-dph"]["max_dph"]
    data["vast-disk-max-size"]["max_disk"] = 10
    assert problems(data) == ["vast-instance-max-dph.max_dph: Field required",
                              "vast-disk-max-size.max_disk: unknown field"]


def test_the_warning_copy_of_the_daily_budget_must_match() -> None:
    data = raw("data-science")
    data["vast-daily-budget"]["daily_budget"] = 20
    assert problems(data) == [
        "vast-daily-budget-warning.daily_budget (10) differs from vast-daily-budget.daily_budget (20); make them equal"]


GRANT = {"allow": 0.5, "reason": "bigger model", "approver": "platform-lead", "expires": "2026-12-31"}


def test_an_exception_must_be_copied_to_the_report_block_and_vice_versa() -> None:
    data = raw("data-science")
    data["vast-instance-max-dph"]["exceptions"] = [GRANT]
    assert problems(data) == [
        "the exception to vast-instance-max-dph allowing 0.5 (expires 2026-12-31) is missing from "
        "vast-policy-exceptions.exceptions; copy it there so previews report it"]
    data["vast-policy-exceptions"]["exceptions"] = [{"rule": "vast-instance-max-dph", **GRANT}]
    tf = parse_team_file(data)
    assert [g.rule for g in tf.policy_exceptions.exceptions] == [RuleName.INSTANCE_MAX_DPH]
    del data["vast-instance-max-dph"]["exceptions"]
    assert problems(data) == [
        "vast-policy-exceptions lists an exception to vast-instance-max-dph allowing 0.5 (expires 2026-12-31) "
        "that the vast-instance-max-dph block does not grant; add it there or remove it"]


def test_an_exception_value_of_the_wrong_type_is_rejected() -> None:
    data = raw("data-science")
    data["vast-verified-hosts-only"]["exceptions"] = [{**GRANT, "allow": "yes please"}]
    assert any(p.startswith("vast-verified-hosts-only.exceptions.0.allow:") for p in problems(data))


def test_the_file_name_must_match_the_team(tmp_path: Path) -> None:
    path = tmp_path / "ml-research.json"
    path.write_text(json.dumps(raw("data-science")))
    with pytest.raises(TeamFileError, match="named for team 'ml-research' but its blocks name team 'data-science'"):
        load_team_file(path)


def test_levels_and_all_are_accepted_and_kept(tmp_path: Path) -> None:
    data = raw("data-science")
    data["all"] = "mandatory"
    data["vast-daily-budget-warning"]["enforcementLevel"] = "advisory"
    tf = parse_team_file(data)
    assert tf.all_level == "mandatory"
    assert tf.levels == {RuleName.DAILY_BUDGET_WARNING: "advisory"}
    assert tf.to_json()["vast-daily-budget-warning"]["enforcementLevel"] == "advisory"
    data["vast-max-gpus"]["enforcementLevel"] = "strict"
    assert problems(data) == ["vast-max-gpus.enforcementLevel: must be one of advisory, mandatory, remediate, disabled"]


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    out = io.StringIO()
    assert check_files([bad, tmp_path / "missing.json"], out=out) == 1
    assert "not valid JSON" in out.getvalue() and "no such file" in out.getvalue()


# -- message catalogue ------------------------------------------------------------------------------------------


def fields_of(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


@pytest.mark.parametrize("rule", list(RuleName))
def test_every_message_renders_and_its_pattern_matches_it(rule: RuleName) -> None:
    for key in [*MESSAGES[rule], *COMMON]:
        template = MESSAGES[rule].get(key) or COMMON[key]
        values = {f: f"<{f} value>" for f in fields_of(template) - ({"rule"} if key in COMMON else set())}
        text = render(rule, key, **values)
        assert pattern(rule, key).fullmatch(text), (rule, key)
        assert pattern(rule, key, **values).fullmatch(text)
        some = sorted(values)[0]
        assert not pattern(rule, key, **{some: "something else"}).search(text)


def test_every_rule_has_messages_that_name_the_team() -> None:
    for rule in RULES:
        for key, template in MESSAGES[rule.name].items():
            assert template.startswith("{team}: "), (rule.name, key)


def test_descriptions_start_with_a_verb_and_names_are_kebab_case() -> None:
    for rule in RULES:
        assert rule.name.value == rule.name.value.lower() and " " not in rule.name.value
        first = rule.description.split()[0]
        assert first.endswith("s") and first[0].isupper(), rule.description
