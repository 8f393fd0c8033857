"""The report commands end to end on a DIY backend: flags, formats, files, exit codes, error messages."""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reports.cli import main, parse_moment, register
from tests.reports.conftest import utc
from tests.reports.scenarios import november

NOW = "2026-12-03T12:00:00Z"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("state")
    november(root)
    return f"file://{root}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_register_adds_the_four_commands_to_a_parser() -> None:
    parser = argparse.ArgumentParser(prog="vastguard")
    register(parser.add_subparsers(dest="command"))
    for command in ("audit", "spend", "chargeback", "reconcile"):
        args = parser.parse_args([command, "--month", "2026-11"] if command == "chargeback" else [command])
        assert callable(args.func)


def test_audit_json_filters_by_team_and_kind(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", "--backend", backend, "--team", "ml-research", "--kind", "destroy",
                       "--format", "json", "--no-progress", "--now", NOW)
    assert code == 0
    document = json.loads(out)
    assert document["schema_version"] == 1 and document["report"] == "audit"
    (event,) = document["events"]
    assert event["kind"] == "destroy" and event["actor"]["author"] == "Bob Stone"
    assert {c["instance_id"] for c in event["changes"]} == {3001, 3004}


def test_audit_csv_time_range(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", "--backend", backend, "--since", "2026-11-10", "--until", "2026-11-12",
                       "--format", "csv", "--no-progress")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0
    assert [(r["stack"], r["message"]) for r in rows] == [
        ("ml-engineering", "run eval"), ("ml-engineering", "park eval"), ("ml-research", "finetune on SXM4 80GB")]
    assert rows[2]["created"] == "finetune-0#3004" and rows[2]["deleted"] == "finetune-0#3002"


def test_spend_table_to_a_file_and_csv(backend: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    table = tmp_path / "spend.txt"
    code, _, _ = run(capsys, "spend", "--backend", backend, "--month", "2026-11", "--by", "month", "--no-progress",
                     "--now", NOW, "--output", str(table))
    assert code == 0
    text = table.read_text()
    assert "ml-engineering" in text and "$3,355.15" in text
    code, out, _ = run(capsys, "spend", "--backend", backend, "--since", "2026-11-25", "--until", "2026-11-25",
                       "--team", "data-science", "--format", "csv", "--no-progress", "--now", NOW)
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert (row["period"], row["instance"], row["hours"], row["cost"]) == ("2026-11-25", "notebook-0", "9.9944", "2.10")


def test_chargeback_writes_invoices_chart_and_json(backend: str, capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    out_dir = tmp_path / "cb"
    teams = tmp_path / "teams"
    teams.mkdir()
    (teams / "ml-research.json").write_text(json.dumps({"vast-daily-budget": {"team": "ml-research",
                                                                              "daily_budget": 200}}))
    code, out, _ = run(capsys, "chargeback", "--backend", backend, "--month", "2026-11", "--out", str(out_dir),
                       "--no-progress", "--now", NOW, "--team-files", str(teams))
    assert code == 0 and "Chargeback 2026-11" in out
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["chargeback.json", "daily-spend.svg", "data-science.csv", "data-science.md",
                     "ml-engineering.csv", "ml-engineering.md", "ml-research.csv", "ml-research.md"]
    assert f"chart: {out_dir / 'daily-spend.svg'}" in out.replace("\n", "")
    chart = (out_dir / "daily-spend.svg").read_text()
    assert "ml-research: $" in chart and "daily budget $200.00" in chart
    assert "ml-engineering: $" in chart and "no daily budget known" in chart
    document = json.loads((out_dir / "chargeback.json").read_text())
    assert document["report"] == "chargeback" and len(document["invoices"]) == 3
    budgets = {i["team"]: i["daily_budget"] for i in document["invoices"]}
    assert budgets == {"data-science": None, "ml-engineering": None, "ml-research": "200"}


def test_chargeback_with_an_unreadable_team_file_names_it(backend: str, capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    (tmp_path / "data-science.json").write_text('{"vast-daily-budget": {"daily_budget": "lots"}}')
    code, _, err = run(capsys, "chargeback", "--backend", backend, "--month", "2026-11", "--out", str(tmp_path),
                       "--no-progress", "--now", NOW, "--team-files", str(tmp_path))
    assert code == 1
    assert "data-science.json" in err and "vastguard team check" in err and "Traceback" not in err


def test_chargeback_as_focus_rows(backend: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "chargeback", "--backend", backend, "--month", "2026-11", "--out", str(tmp_path),
                       "--no-progress", "--now", NOW, "--format", "focus")
    assert code == 0
    path = tmp_path / "focus-cost-and-usage-2026-11.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert f"FOCUS 1.4 cost-and-usage rows to {path}" in out.replace("\n", "")
    assert {r["x_Team"] for r in rows} == {"data-science", "ml-engineering", "ml-research"}
    assert all(r["ChargePeriodStart"].startswith("2026-11-") for r in rows)


@pytest.mark.parametrize(("argv", "message"), [
    (["spend", "--month", "2026-13"], "YYYY-MM"),
    (["spend", "--since", "yesterday"], "is not a date"),
    (["spend", "--since", "2026-11-10", "--until", "2026-11-01"], "must be after"),
    (["audit", "--stack", "nope"], "no stack matches"),
    (["reconcile", "--threshold", "lots"], "not an amount"),
])
def test_bad_input_is_one_line_of_advice(backend: str, capsys: pytest.CaptureFixture[str], argv: list[str],
                                         message: str) -> None:
    code, _, err = run(capsys, *argv, "--backend", backend, "--no-progress")
    assert code == 1
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_missing_backend_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "audit", "--backend", f"file://{tmp_path}/nothing", "--no-progress")
    assert code == 1 and "no Pulumi state" in err


def test_parse_moment_bounds() -> None:
    assert parse_moment("2026-11") == utc(2026, 11, 1)
    assert parse_moment("2026-11", end=True) == utc(2026, 12, 1)
    assert parse_moment("2026-11-30", end=True) == utc(2026, 12, 1)
    assert parse_moment("2026-11-30T10:00:00") == utc(2026, 11, 30, 10)
    assert parse_moment("2026-11-30T10:00:00+02:00") == utc(2026, 11, 30, 8)


def test_progress_bar_counts_every_entry(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    from reports.cli import load_folds
    from reports.sources import open_source

    source = open_source(backend)
    folds = load_folds(source, source.stacks(), progress=True)
    assert sum(len(f.events) for f in folds) == sum(source.count(ref) for ref in source.stacks()) == 11


def test_pulumi_cloud_needs_the_runner_vastguard_passes_in(capsys: pytest.CaptureFixture[str]) -> None:
    """reports/ never starts Pulumi itself (the layering contract): without the runner `vastguard` gives it, a
    backend only the CLI can read says how to run the command instead."""
    code, _, err = run(capsys, "audit", "--backend", "https://api.pulumi.com", "--no-progress")
    assert code == 1
    assert "this needs the Pulumi CLI: run the command as `vastguard ...`" in err
    calls: list[tuple[str, ...]] = []

    def runner(project_dir: Path, backend: str) -> Callable[..., str]:
        def run_cli(*args: str, stack: str | None = None) -> str:
            calls.append((backend, *args))
            return "[]" if args[:2] == ("stack", "ls") else "{}"
        return run_cli

    code = main(["audit", "--backend", "https://api.pulumi.com", "--no-progress", "--format", "json"], pulumi=runner)
    out = capsys.readouterr().out
    assert (code, json.loads(out)["events"]) == (0, [])  # no stacks there: an empty audit, read through the runner
    assert calls == [("https://api.pulumi.com", "stack", "ls", "--all", "--json")]


def test_keys_from_pulumi_tries_the_delivered_key_before_the_stack_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from reports.charges import ChargesError
    from reports.cli import _key_resolver

    monkeypatch.delenv("VASTGUARD_KEY_ML_RESEARCH", raising=False)
    asked: list[tuple[str, ...]] = []

    def runner(*args: str, stack: str | None = None) -> str:
        asked.append((*args, stack or ""))
        return "vk-from-config\n" if stack == "own" else ""

    delivered = {"ml-research": "vk-delivered"}
    args = argparse.Namespace(keys_from_pulumi=True, backend="file:///state", local_state=None, project_dir=".",
                              pulumi_runner=lambda _dir, _backend: runner,
                              stack_key=lambda backend, stack: delivered.get(stack) if backend == "file:///state"
                              else None)
    resolve = _key_resolver(args)
    assert resolve("ml-research", ["ml-research"]) == "vk-delivered" and asked == []  # no passphrase needed
    assert resolve("own", ["own"]) == "vk-from-config" and asked == [("config", "get", "vastai:apiKey", "own")]
    with pytest.raises(ChargesError, match=r"no Vast.ai key for team 'x': export VASTGUARD_KEY_X"):
        resolve("x", ["x"])
