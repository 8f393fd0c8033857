"""The platform stack in the same backend as the team stacks: its operations are in the audit (who changed which
team's access), but it is no team: no spend, no invoice, nothing to reconcile (no key to ask for)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.cli import main
from reports.sources import SourceError, stack_outputs
from tests.reports.conftest import utc
from tests.reports.scenarios import november
from tests.reports.synthetic import ci_environment, epoch, nanos, rfc3339

NOW = "2026-12-03T12:00:00Z"


def write_platform(root: Path) -> None:
    start, end = utc(2026, 11, 1, 8), utc(2026, 11, 1, 8, 1)
    stack_urn = "urn:pulumi:platform::vastguard::pulumi:pulumi:Stack::vastguard-platform"
    checkpoint = {"version": 3, "checkpoint": {"stack": "organization/vastguard/platform", "latest": {
        "manifest": {"time": rfc3339(end)},
        "resources": [
            {"urn": stack_urn, "type": "pulumi:pulumi:Stack", "custom": False,
             "outputs": {"platform": True, "key_envelopes": {"ml-research": {"deploy": {"ciphertext": "x"}}}}},
            {"urn": "urn:pulumi:platform::vastguard::pulumi-python:dynamic/vastai:Team::ml-research",
             "type": "pulumi-python:dynamic/vastai:Team", "custom": True, "id": "100002",
             "inputs": {"team": "ml-research"}, "outputs": {"team": "ml-research", "team_id": 100002}}]}}}
    info = {"kind": "update", "startTime": int(epoch(start)), "endTime": int(epoch(end)), "result": "succeeded",
            "message": "platform: ml-research's keys", "environment": ci_environment(build="9"), "version": 0,
            "resourceChanges": {"create": 2}}
    history = root / ".pulumi" / "history" / "vastguard" / "platform"
    history.mkdir(parents=True, exist_ok=True)
    stem = f"platform-{nanos(end)}"
    (history / f"{stem}.history.json").write_text(json.dumps(info))
    (history / f"{stem}.checkpoint.json").write_text(json.dumps(checkpoint))
    (root / ".pulumi" / "stacks" / "vastguard" / "platform.json").write_text(json.dumps(checkpoint))


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("state")
    november(root)
    write_platform(root)
    return f"file://{root}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_platforms_operations_are_in_the_audit(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", "--backend", backend, "--format", "json", "--no-progress", "--now", NOW)
    assert code == 0
    events = [e for e in json.loads(out)["events"] if e["stack"] == "platform"]
    assert [(e["message"], e["team"]) for e in events] == [("platform: ml-research's keys", "platform")]


def test_the_platform_spends_nothing_and_has_nothing_to_reconcile(backend: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "spend", "--backend", backend, "--month", "2026-11", "--format", "json",
                       "--no-progress", "--now", NOW)
    assert code == 0 and '"platform"' not in out
    # No key is asked for the platform (a team stack's key would be; the reconcile fails on the first).
    code, _, err = run(capsys, "reconcile", "--backend", backend, "--month", "2026-11", "--no-progress",
                       "--now", NOW)
    assert "no Vast.ai key for team" in err and "'platform'" not in err


def test_the_platforms_current_outputs_are_read_without_a_passphrase(backend: str) -> None:
    outputs = stack_outputs(backend, "vastguard", "platform")
    assert outputs["platform"] is True and outputs["key_envelopes"]["ml-research"]["deploy"] == {"ciphertext": "x"}
    assert stack_outputs(backend, "vastguard", "ml-engineering")["team"] == "ml-engineering"
    with pytest.raises(SourceError, match=r"no stack 'nope' of project 'vastguard'"):
        stack_outputs(backend, "vastguard", "nope")
