"""Generated invalid team files (policies/teams/<team>.json): every one is refused, by a message naming the
rule (the policy's block) and the field.

Three entry points, as a team file meets them:
- `vastguard team check` (policies.teamfile: the whole file, `check_files` / `parse_team_file`);
- each rule's own loading of its block in the pack (policies.config.load), which denies with "the <rule>
  block ... is invalid: <field>: ..." whatever reaches it;
- the pack served over the analyzer protocol (tests/policies/harness.py) for a few cases.
The engine validates the file against each policy's JSON schema before the pack sees it; a preview with an
invalid file, and that it makes no mutating Vast.ai call, is in tests/e2e/test_bad_input_engine.py.

Invalid values are written from each field's meaning (a negative budget, `true` as a count, Infinity as a cap,
a blank GPU name, an exception expiring on the 13th month), not derived from the models.
"""

from __future__ import annotations

import copy
import io
import json
import re
import string
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.config import LEVEL_KEY, ConfigProblem, Limited, load
from policies.names import RuleName
from policies.rules import RULES_BY_NAME
from policies.teamfile import TEAMS_DIR, TeamFileError, check_files, parse_team_file
from tests.policies.fakes import inputs
from tests.policies.harness import AnalyzerProcess, Resource, team_file

CI = settings(derandomize=True, max_examples=200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TEAMS = ("ml-engineering", "data-science", "ml-research")

# --- invalid values, by what they are --------------------------------------------------------------------

words = st.text(string.ascii_letters, min_size=1, max_size=10)  # never parsed as a number
containers = st.lists(st.integers(), max_size=2) | st.dictionaries(words, st.integers(), max_size=2)
numeric_text = st.sampled_from(["3", "0.5", "1e3", " 2 "])
not_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])
not_a_number = st.booleans() | words | numeric_text | containers
not_a_string = st.booleans() | st.integers() | st.floats(allow_nan=False) | containers
not_a_bool = (st.integers() | st.floats() | words | numeric_text | containers
              | st.sampled_from(["true", "false", "yes", "no", "1", "0"]))
fractions = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
negative = st.floats(max_value=0, exclude_max=True, allow_nan=False, allow_infinity=False)


def amounts(*, nullable: bool = False, high: float | None = None) -> st.SearchStrategy[Any]:
    """Not a non-negative finite JSON number (null allowed where the field means "none")."""
    out = negative | not_finite | not_a_number
    if high is not None:
        out |= st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False)
    return out if nullable else out | st.none()


counts = st.integers(max_value=-1) | fractions | not_finite | not_a_number | st.none()
blank = st.sampled_from(["", " ", "\t", "  \n"])


GOOD_ENTRIES = ["RTX_4090", "pytorch/pytorch"]  # valid in every list field (a GPU, an image, a stack name)


def lists_of(bad_item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Not a list, an empty list, or a list holding one bad entry among good ones."""
    return (st.just([]) | not_a_string.filter(lambda v: not isinstance(v, list)) | st.none() | words
            | st.tuples(bad_item, st.integers(0, 2)).map(lambda t: [*GOOD_ENTRIES[: t[1]], t[0]]))


# rule -> field -> invalid values. Every block's `team` and (in limited blocks) `exceptions` come on top.
FIELDS: dict[RuleName, dict[str, st.SearchStrategy[Any]]] = {
    RuleName.TEAM_BINDING: {"stacks": lists_of(blank | not_a_string | st.sampled_from(["ml engineering", "a b"]))},
    RuleName.GPU_ALLOW_LIST: {"allowed_gpus": lists_of(blank | not_a_string)},
    RuleName.INSTANCE_MAX_DPH: {"max_dph": amounts()},
    RuleName.HOST_MIN_RELIABILITY: {"min_reliability": amounts(high=1)},
    RuleName.VERIFIED_HOSTS_ONLY: {"allow_unverified": not_a_bool | st.none()},
    RuleName.IMAGE_ALLOWED_REGISTRIES: {
        "allowed_images": lists_of(blank | not_a_string | st.sampled_from(["py torch", "ghcr.io/ acme/"]))},
    RuleName.DISK_MAX_SIZE: {"max_disk_gb": amounts()},
    RuleName.MAX_INSTANCES: {"max_instances": counts},
    RuleName.MAX_GPUS: {"max_gpus": counts},
    RuleName.DAILY_BUDGET: {"daily_budget": amounts()},
    RuleName.DAILY_BUDGET_WARNING: {"daily_budget": amounts(),
                                    "warn_share": amounts(high=1) | st.just(0) | st.just(0.0)},
    RuleName.MONTHLY_BUDGET: {"monthly_budget": amounts(nullable=True)},
    RuleName.MAX_HOURLY_BURN: {"max_hourly_burn": amounts(nullable=True)},
    RuleName.POLICY_EXCEPTIONS: {},
    RuleName.ACTUAL_SPEND: {"timezone": st.sampled_from(["Mars/Olympus", "UTC+1", "", "Europe/Berln"]) | not_a_string},
    RuleName.BUDGET_ENFORCEMENT: {
        "action": st.sampled_from(["stop", "Pause", "", "delete"]) | not_a_string,
        "warn_share": amounts(high=1) | st.just(0),
        "idle": st.sampled_from([{"max_gpu_util": 2, "minutes": 60}, {"max_gpu_util": 0.1, "minutes": 0},
                                 {"max_gpu_util": 0.1, "minutes": 60, "action": "kill"}, {"minutes": 60}, "yes", 5]),
        "prepaid": st.sampled_from([{"period": "week"}, {"reclaim": "yes"}, "on", 1, {"period": "month", "x": 1}]),
    },
}
# A valid `allow` for each limited rule's exceptions, and invalid ones.
ALLOW: dict[RuleName, tuple[Any, st.SearchStrategy[Any]]] = {
    RuleName.GPU_ALLOW_LIST: ("H100_SXM", blank | not_a_string | st.none()),
    RuleName.INSTANCE_MAX_DPH: (3.0, amounts()),
    RuleName.HOST_MIN_RELIABILITY: (0.9, amounts(high=1) | not_finite),
    RuleName.VERIFIED_HOSTS_ONLY: (True, not_a_bool | st.none()),
    RuleName.IMAGE_ALLOWED_REGISTRIES: ("ghcr.io/acme/", blank | not_a_string | st.just("ghcr.io/ acme")),
    RuleName.DISK_MAX_SIZE: (300, amounts()),
    RuleName.MAX_INSTANCES: (6, counts),
    RuleName.MAX_GPUS: (10, counts),
    RuleName.DAILY_BUDGET: (80, amounts()),
    RuleName.MONTHLY_BUDGET: (1000, amounts()),
    RuleName.MAX_HOURLY_BURN: (5, amounts()),
}
LIMITED = [rule for rule in FIELDS if issubclass(RULES_BY_NAME[rule].config, Limited)]
assert set(LIMITED) == set(ALLOW)
bad_teams = st.sampled_from(["", "x", "ML-Engineering", "9team", "-team", "ml engineering", "ml_eng", "a" * 41]
                            ) | not_a_string | st.none()
bad_levels = st.sampled_from(["strict", "Mandatory", "error", "warn", ""]) | st.integers() | st.booleans()
bad_dates = st.sampled_from(["2026-13-01", "2026-02-30", "30/06/2026", "tomorrow", "", "2026-6-31"]) \
    | st.integers() | st.none() | containers


def typos(name: str) -> list[str]:
    out = {name[:i] + name[i + 1] + name[i] + name[i + 2:] for i in range(len(name) - 1)}
    out |= {name[:i] + name[i + 1:] for i in range(len(name))} | {name.replace("_", "-"), name.upper()}
    return sorted(out - {name})


# The copies in vast-policy-exceptions take any rule's `allow` (true, a number or a name): only these are wrong.
BAD_COPY_ALLOW = st.none() | containers | not_finite


@st.composite
def bad_grants(draw: st.DrawFn, rule: RuleName, *, copy_of: bool = False) -> tuple[dict[str, Any], str]:
    """A grant (or, `copy_of`, its copy in vast-policy-exceptions) with one problem, and the grant's field
    the problem is in."""
    allow, bad_allow = ALLOW[rule]
    if copy_of:
        bad_allow = BAD_COPY_ALLOW
    grant: dict[str, Any] = {"allow": allow, "reason": "conference deadline", "approver": "platform-lead",
                             "expires": "2026-06-30"}
    if copy_of:
        grant["rule"] = rule.value
    where = draw(st.sampled_from(["allow", "reason", "approver", "expires", "missing", "unknown"]))
    if where == "allow":
        grant["allow"] = draw(bad_allow)
    elif where in ("reason", "approver"):
        grant[where] = draw(blank.filter(lambda s: s == "") | not_a_string | st.none())
    elif where == "expires":
        grant["expires"] = draw(bad_dates)
    elif where == "missing":
        where = draw(st.sampled_from(["allow", "reason", "approver", "expires"]))
        del grant[where]
    else:
        where = draw(st.sampled_from(["alow", "approved_by", "until", "expiry"]))
        grant[where] = "x"
    return grant, where


@dataclass(frozen=True)
class Corruption:
    rule: str
    field: str  # the block's field ("enforcementLevel", a typo, or "(block)" for the whole block)
    kind: str


@st.composite
def corrupted_blocks(draw: st.DrawFn, raw: dict[str, Any], rule: RuleName) -> Corruption:
    """Make one block of `raw` invalid in place."""
    block = raw[rule.value]
    options = [*FIELDS[rule], "team", "unknown", "level", "missing_block", "not_a_block"]
    if rule in LIMITED:
        options.append("exceptions")
    if rule == RuleName.POLICY_EXCEPTIONS:
        options.append("named_exceptions")
    choice = draw(st.sampled_from(options))
    if choice in FIELDS[rule]:
        block[choice] = draw(FIELDS[rule][choice], label=f"{rule}.{choice}")
        return Corruption(rule.value, choice, "value")
    if choice == "team":
        value = draw(bad_teams)
        if value is None:
            del block["team"]
        else:
            block["team"] = value
        return Corruption(rule.value, "team", "value")
    if choice == "unknown":
        name = draw(st.sampled_from([t for f in block if f != "team" for t in typos(f)] or ["exception"]))
        block[name] = 1
        return Corruption(rule.value, name, "unknown")
    if choice == "level":
        block[LEVEL_KEY] = draw(bad_levels)
        return Corruption(rule.value, LEVEL_KEY, "value")
    if choice == "missing_block":
        del raw[rule.value]
        return Corruption(rule.value, "(block)", "missing")
    if choice == "not_a_block":
        raw[rule.value] = draw(not_a_string.filter(lambda v: not isinstance(v, dict)) | st.none() | words)
        return Corruption(rule.value, "(block)", "not_a_block")
    if choice == "exceptions":
        if draw(st.booleans()):
            block["exceptions"] = draw(not_a_string.filter(lambda v: not isinstance(v, list)) | words)
        else:
            grant, _ = draw(bad_grants(rule))
            block["exceptions"] = [grant]
        return Corruption(rule.value, "exceptions", "value")
    # an invalid copy in vast-policy-exceptions: a copy with a bad field, or naming no rule of the pack
    grant, _ = draw(bad_grants(RuleName.MAX_INSTANCES, copy_of=True))
    if draw(st.booleans()):
        grant["rule"] = draw(st.sampled_from(["vast-max-instance", "max_instances", "", "vast-gpu-allowlist"]))
    block["exceptions"] = [grant]
    return Corruption(rule.value, "exceptions", "value")


@st.composite
def bad_team_files(draw: st.DrawFn) -> tuple[str, dict[str, Any], list[Corruption]]:
    team = draw(st.sampled_from(TEAMS))
    raw = copy.deepcopy(team_file(team))
    rules = draw(st.lists(st.sampled_from(list(FIELDS)), min_size=1, max_size=3, unique=True))
    return team, raw, [draw(corrupted_blocks(raw, rule)) for rule in rules]


def named(problems: list[str], c: Corruption) -> bool:
    if c.kind == "missing":
        return f"{c.rule}: block missing; copy it from policies/teams/_template.json" in problems
    if c.kind == "not_a_block":
        return any(p.startswith(f"{c.rule}: ") for p in problems)
    if c.kind == "unknown":
        return f"{c.rule}.{c.field}: unknown field" in problems
    return any(re.match(rf"{re.escape(c.rule)}\.{re.escape(c.field)}[.:]", p) for p in problems)


# --- vastguard team check --------------------------------------------------------------------------------


def test_the_committed_files_are_the_valid_baseline() -> None:
    """What the generated cases corrupt is valid to begin with, so each refusal below is the corruption's."""
    for team in TEAMS:
        assert parse_team_file(team_file(team), expect_team=team).team == team


@CI
@given(case=bad_team_files())
def test_team_check_refuses_each_invalid_block_naming_rule_and_field(
        case: tuple[str, dict[str, Any], list[Corruption]]) -> None:
    team, raw, corruptions = case
    with pytest.raises(TeamFileError) as err:
        parse_team_file(raw, source=f"policies/teams/{team}.json", expect_team=team)
    problems = err.value.problems
    assert str(err.value).startswith(f"policies/teams/{team}.json: invalid team file:")
    for corruption in corruptions:
        assert named(problems, corruption), f"{corruption} not named in {problems}"
    touched = {c.rule for c in corruptions}
    for problem in problems:
        assert problem.split(".", 1)[0].split(":", 1)[0] in touched, f"blames an untouched block: {problem}"


@settings(CI, max_examples=40)
@given(case=bad_team_files())
def test_the_team_check_command_refuses_the_file_on_disk(case: tuple[str, dict[str, Any], list[Corruption]]) -> None:
    """Through the files `vastguard team check` reads: JSON as written by hand, NaN and Infinity included
    (Python's reader accepts them; Pulumi's does not, so they must not pass either)."""
    team, raw, corruptions = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{team}.json"
        path.write_text(json.dumps(raw, indent=2))
        out = io.StringIO()
        assert check_files([path], out=out) == 1
    text = out.getvalue()
    assert text.startswith(f"{path}: invalid team file:")
    problems = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ")]
    for corruption in corruptions:
        assert named(problems, corruption), f"{corruption} not named in {text}"


def test_non_json_numbers_are_refused_by_team_check(tmp_path: Path) -> None:
    text = (TEAMS_DIR / "data-science.json").read_text()
    for literal in ("Infinity", "NaN", "-Infinity"):
        path = tmp_path / "data-science.json"
        path.write_text(text.replace('"max_dph": 0.3', f'"max_dph": {literal}'))
        out = io.StringIO()
        assert check_files([path], out=out) == 1
        assert "vast-instance-max-dph.max_dph: Input should be a finite number" in out.getvalue()


# --- each rule's own loading of its block ------------------------------------------------------------------


@st.composite
def bad_blocks(draw: st.DrawFn) -> tuple[RuleName, dict[str, Any], str]:
    team = draw(st.sampled_from(TEAMS))
    rule = draw(st.sampled_from(list(FIELDS)))
    block = copy.deepcopy(team_file(team)[rule.value])
    fields = [*FIELDS[rule], "exceptions"] if rule in LIMITED or rule == RuleName.POLICY_EXCEPTIONS \
        else list(FIELDS[rule])
    name = draw(st.sampled_from([*fields, "unknown"]))
    if name == "unknown":
        name = draw(st.sampled_from(typos(fields[0])))
        block[name] = 1
    elif name == "exceptions":
        copy_of = rule == RuleName.POLICY_EXCEPTIONS
        grant, _ = draw(bad_grants(RuleName.MAX_INSTANCES if copy_of else rule, copy_of=copy_of))
        block["exceptions"] = [grant]
    else:
        block[name] = draw(FIELDS[rule][name])
    return rule, block, name


@CI
@given(case=bad_blocks())
def test_each_rule_denies_its_invalid_block_naming_the_field(case: tuple[RuleName, dict[str, Any], str]) -> None:
    rule, block, name = case
    team = block["team"]
    loaded = load(RULES_BY_NAME[rule].config, block, rule=rule, stack=team)
    assert isinstance(loaded, ConfigProblem), f"{rule} accepted {block}"
    assert loaded.message.startswith(f"{team}: the {rule} block of policies/teams/{team}.json is invalid: ")
    problems = loaded.message.split(" is invalid: ", 1)[1].split("; fix it (see", 1)[0]
    assert re.search(rf"(^|; ){re.escape(name)}[.:]", problems), loaded.message
    assert f"vastguard team check policies/teams/{team}.json" in loaded.message


# --- the pack over the analyzer protocol, for a few -----------------------------------------------------

STACK = "ml-engineering"
# Values the engine's schema check would stop first; served to the pack directly (the harness does not
# schema-check), they show the rule's own fail-closed denial, at the rule's level, naming the field.
SERVED = [
    (RuleName.MAX_INSTANCES, "max_instances", True, "max_instances: must be a JSON number, not true"),
    (RuleName.GPU_ALLOW_LIST, "allowed_gpus", ["RTX_4090", " "], "allowed_gpus.1: must not be empty or blank"),
    (RuleName.VERIFIED_HOSTS_ONLY, "allow_unverified", "yes", "allow_unverified: Input should be a valid boolean"),
    (RuleName.DAILY_BUDGET, "exceptions", [{"allow": 80, "reason": "r", "approver": "a", "expires": "2026-13-01"}],
     "exceptions.0.expires: Input should be a valid date"),
    (RuleName.DAILY_BUDGET_WARNING, "warn_share", 0, "warn_share: Input should be greater than 0"),
]


@pytest.fixture(scope="module")
def pack() -> Iterator[AnalyzerProcess]:
    with AnalyzerProcess(stack=STACK) as process:
        yield process


@pytest.mark.parametrize(("rule", "field", "value", "problem"), SERVED, ids=[f"{r}.{f}" for r, f, _, _ in SERVED])
def test_the_served_pack_denies_an_invalid_block_naming_rule_and_field(
        pack: AnalyzerProcess, rule: RuleName, field: str, value: Any, problem: str) -> None:
    config = copy.deepcopy(team_file(STACK))
    config[rule.value][field] = value
    pack.configure(config)
    resource = Resource(name="train-0", stack=STACK, props=inputs(STACK))
    rule_def = RULES_BY_NAME[rule]
    diags = pack.analyze(resource) if rule_def.resource else pack.analyze_stack([resource])
    mine = [d for d in diags if d.policy == rule.value]
    assert len(mine) == 1, diags
    assert mine[0].level == rule_def.level.value
    # The SDK puts the policy's description on the first line, then the rule's message.
    assert mine[0].message.splitlines()[-1].startswith(
        f"{STACK}: the {rule} block of policies/teams/{STACK}.json is invalid: ")
    assert problem in mine[0].message
    # Only the broken block is denied for its config: the other rules still judge with their own blocks.
    assert not [d for d in diags if d.policy != rule.value and "is invalid" in d.message]
