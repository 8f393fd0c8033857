"""CI verdicts from the engine's structured events, on event logs the pinned engine (3.259) recorded against the
emulator (tests/ci/fixtures: `pulumi preview --event-log` of a passing, an advisory and a denied preview, and
`pulumi policy analyze --json` of a stack over a lowered limit): the verdict, every violation, the cost change
in Decimal with unknown kept apart from zero, and the JSON checked against its JSON Schema."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fleet.costs import storage_hourly
from vastguard.engine_events import UNKNOWN, EventLogError, parse_events
from vastguard.summary import deploy_markdown, policy_audit_markdown, preview_markdown, to_json
from vastguard.verdict import SCHEMA_VERSION, PreviewReport, Rules, policy_audit_report, preview_report

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = json.loads((Path(__file__).parents[2] / "vastguard" / "schemas" / "ci-report.schema.json").read_text())
TEAM = "data-science"


def recorded(name: str) -> str:
    return (FIXTURES / name).read_text()


def validated(report: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(to_json(report))
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(document)
    return document


def instance_states(text: str) -> dict[str, dict[str, Any]]:
    """name -> the step's metadata, read straight from the log (independently of the code under test)."""
    out = {}
    for line in text.splitlines():
        event = json.loads(line)
        step = (event.get("resourcePreEvent") or {}).get("metadata")
        if step and step["type"].endswith("vastai:Instance"):
            out[step["urn"].rsplit("::", 1)[-1]] = step
    return out


def preview(name: str, exit_code: int) -> PreviewReport:
    return preview_report(TEAM, TEAM, parse_events(recorded(name)), exit_code=exit_code)


def test_the_schema_is_itself_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_a_passing_preview_of_a_new_stack() -> None:
    report = preview("preview-passed-new-stack.jsonl", 0)
    document = validated(report)
    assert (document["verdict"], document["violations"], document["changes"]) == ("passed", [], {"create": 1})
    quote = instance_states(recorded("preview-passed-new-stack.jsonl"))["notebook-0"]["new"]["inputs"]["quote"]
    assert report.cost.before.hourly == 0 and report.cost.before.instances == 0  # known to be nothing, not unknown
    assert report.cost.after.hourly == Decimal(str(quote["dph_total"]))
    assert report.cost.after.basis == {"quote": 1}
    assert document["cost"]["after"]["daily"] == str(Decimal(str(quote["dph_total"])) * 24)
    assert document["schema_version"] == SCHEMA_VERSION == 2
    assert (document["rules"], document["key"]) == (None, None)  # the engine's report alone does not know them


def test_an_advisory_preview_stops_one_instance_and_adds_one() -> None:
    text = recorded("preview-advisory-stop-and-add.jsonl")
    report = preview("preview-advisory-stop-and-add.jsonl", 0)
    document = validated(report)
    assert document["verdict"] == "advisory" and report.title == "passed with advisories"
    (warning,) = report.violations
    assert (warning.policy, warning.level, warning.resource) == ("vast-daily-budget-warning", "advisory",
                                                                 "vastguard-data-science")
    assert warning.description.startswith("Warns when") and "warning level" in warning.message
    states = instance_states(text)
    rented = states["notebook-0"]["old"]["outputs"]
    new = states["extra-0"]["new"]["inputs"]["quote"]
    assert report.cost.before.hourly == Decimal(str(rented["dph_total"]))
    stopped = storage_hourly(Decimal(str(rented["storage_cost"])), rented["disk_gb"])
    assert report.cost.after.hourly == stopped + Decimal(str(new["dph_total"]))
    assert report.cost.after.basis == {"actual": 1, "quote": 1}
    assert report.changes == {"create": 1, "update": 1}


def test_a_denied_preview_lists_every_violation_and_the_cost_it_would_have() -> None:
    text = recorded("preview-denied-over-limits.jsonl")
    report = preview("preview-denied-over-limits.jsonl", 1)
    document = validated(report)
    assert document["verdict"] == "denied"
    assert [(v.policy, v.level) for v in report.violations] == [
        ("vast-max-instances", "mandatory"), ("vast-max-gpus", "mandatory"), ("vast-daily-budget", "mandatory"),
        ("vast-daily-budget-warning", "advisory")]
    assert "declares 5 instances, more than the team's cap of 2" in report.violations[0].message
    states = instance_states(text)
    expected = Decimal(str(states["notebook-0"]["old"]["outputs"]["dph_total"])) + sum(
        (Decimal(str(s["new"]["inputs"]["quote"]["dph_total"])) for n, s in states.items() if s["op"] == "create"),
        Decimal(0))
    assert report.cost.after.hourly == expected and report.cost.after.instances == 5
    assert report.changes == {"create": 4, "same": 1}
    md = preview_markdown([report])
    assert f"| {TEAM} | ❌ denied by policy | 4 create |" in md
    assert "- **[mandatory] vast-max-instances** (vastguard-data-science): data-science: stack" in md


def test_an_unknown_price_stays_unknown_in_json_and_markdown() -> None:
    lines = recorded("preview-passed-new-stack.jsonl").replace('"dph_total":', f'"dph_total":"{UNKNOWN}","was":')
    lines = lines.replace('"max_dph":0.3', f'"max_dph":"{UNKNOWN}"')
    report = preview_report(TEAM, TEAM, parse_events(lines), exit_code=0)
    document = validated(report)
    assert document["cost"]["after"]["hourly"] is None and document["cost"]["hourly_delta"] is None
    assert document["cost"]["after"]["unknown_instances"] == ["notebook-0"]
    assert document["cost"]["before"]["hourly"] == "0"
    md = preview_markdown([report])
    assert "| $0.00 -> unknown (unknown) |" in md and "not as $0" in md


def test_a_preview_that_failed_before_any_policy_ran() -> None:
    events = ('{"sequence":0,"timestamp":1,"diagnosticEvent":{"message":"fleet group notebook: gpu RTX_9999 is '
              'not a GPU the marketplace knows","severity":"error"}}\n'
              '{"sequence":1,"timestamp":1,"diagnosticEvent":{"prefix":"error: ","message":"preview failed\\n",'
              '"severity":"error"}}\n')
    report = preview_report(TEAM, TEAM, parse_events(events), exit_code=255)
    document = validated(report)
    assert document["verdict"] == "failed" and document["errors"] == [
        "fleet group notebook: gpu RTX_9999 is not a GPU the marketplace knows"]
    no_log = preview_report(TEAM, TEAM, [], exit_code=255, stderr_tail="error: no stack named 'x'")
    assert (no_log.verdict, no_log.errors) == ("failed", ("error: no stack named 'x'",))
    assert "### data-science: preview failed" in preview_markdown([no_log])


def test_the_schema_rejects_what_a_consumer_could_misread() -> None:
    document = validated(preview("preview-denied-over-limits.jsonl", 1))
    validator = jsonschema.Draft202012Validator(SCHEMA)
    broken = [
        {**document, "verdict": "ok"},
        {**document, "cost": {**document["cost"], "hourly_delta": 0.5}},  # a float, not an exact decimal
        {**document, "cost": {**document["cost"], "hourly_delta": "$0.50"}},
        {**document, "schema_version": 3},
        {**document, "rules": {"source": "pr", "commit": None}},  # only the base or the checkout judge
        {**document, "rules": {"source": "base"}},
        {**document, "key": "admin"},
        {key: value for key, value in document.items() if key != "violations"},
        {**document, "surprise": True},
    ]
    for doc in broken:
        assert not validator.is_valid(doc), doc


def test_the_summary_says_which_rules_judged_and_with_which_key() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    report = preview("preview-passed-new-stack.jsonl", 0).model_copy(
        update={"rules": Rules(source="base", commit=sha), "key": "preview"})
    document = validated(report)
    assert (document["rules"], document["key"]) == ({"source": "base", "commit": sha}, "preview")
    md = preview_markdown([report])
    assert (f"{TEAM}: judged by the base's rules (commit 0123456789ab), not the pull request's; previewed with its "
            "read-only preview key (from the platform stack).") in md
    local = report.model_copy(update={"rules": Rules(source="checkout", commit=None), "key": "own"})
    assert "judged by this checkout's rules (commit unknown); previewed with its own key (vastai:apiKey)." in \
        preview_markdown([local])
    v1 = {k: v for k, v in json.loads(to_json(report)).items() if k not in {"rules", "key"}}
    jsonschema.Draft202012Validator(SCHEMA).validate({**v1, "schema_version": 1})  # version 1 is still valid


def test_the_nightly_audit_reports_what_no_longer_complies() -> None:
    report = policy_audit_report(TEAM, TEAM, parse_events(recorded("analyze-over-a-lowered-limit.jsonl")),
                                 exit_code=255)
    document = validated(report)
    assert (document["report"], document["verdict"]) == ("policy-audit", "denied")
    assert [v.policy for v in report.violations] == ["vast-max-instances"]
    md = policy_audit_markdown([report])
    assert "| data-science | ❌ no longer complies | 1 | 0 |" in md and "team's cap of 0" in md
    clean = policy_audit_report(TEAM, TEAM, parse_events(
        '{"sequence":0,"timestamp":1,"summaryEvent":{"resourceChanges":{},"result":"succeeded"}}\n'), exit_code=0)
    assert validated(clean)["verdict"] == "passed" and "✅ complies" in policy_audit_markdown([clean])


def test_a_broken_event_log_names_the_line() -> None:
    with pytest.raises(EventLogError, match="line 2 is not JSON"):
        parse_events('{"sequence":0}\nnot json\n')
    with pytest.raises(EventLogError, match="event 1 is not an engine event"):
        parse_events('{"sequence":0,"policyEvent":{"message":"no policy name"}}\n')


def test_deploy_summary_never_shows_an_unknown_cost_as_zero() -> None:
    md = deploy_markdown("t", {"estimated_cost": {"hourly": 0.16, "daily": 3.93, "monthly": 119.68},
                               "fleet": {"a-0": {}}}, True)
    assert "| t | ✅ deployed | 1 | $0.16 | $3.93 | $119.68 |" in md
    assert "judged by" not in md
    said = deploy_markdown("t", {}, True, key="deploy", commit="abcdef0123456789")
    assert "t: judged by the rules of commit abcdef012345; ran with its deploy key (from the platform stack)." in said
    failed = deploy_markdown("t", {}, False)
    assert "failed" in failed and "$0.00" not in failed and "| unknown | unknown | unknown | unknown |" in failed
