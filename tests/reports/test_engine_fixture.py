"""Files the pinned Pulumi engine really wrote (tests/reports/fixtures/engine-diy: a stack of
`pulumi-python:dynamic/vastai:Instance` resources, updated from a git checkout, partly on GitHub Actions, one
update failed, one written gzip-compressed, then destroyed). They pin the shapes the synthetic writer copies."""

from __future__ import annotations

import json
from pathlib import Path

from reports.fold import fold_stack
from reports.pulumi_state import decode_bytes, parse_checkpoint, parse_update
from reports.sources import CliHistory, StackRef, open_source
from tests.reports.conftest import FIXTURES, utc
from tests.reports.synthetic import Rented, StackWriter

ENGINE_DIY = FIXTURES / "engine-diy"


def test_real_history_folds_into_the_audit_trail() -> None:
    source = open_source(f"file://{ENGINE_DIY}")
    assert source.stacks() == [StackRef("vastguard", "ml-research")]
    fold = fold_stack("vastguard", "ml-research", source.entries(StackRef("vastguard", "ml-research")))
    assert [(e.kind, e.result) for e in fold.events] == [
        ("update", "succeeded"), ("update", "succeeded"), ("refresh", "succeeded"), ("update", "failed"),
        ("update", "succeeded"), ("destroy", "succeeded"),
    ]
    first, replace, _refresh, failed, drop, destroy = fold.events
    assert first.team == "ml-research"
    assert first.message == "first deploy"
    assert first.actor.author == "Ada Lovelace" and first.actor.committer == "CI Bot"
    assert first.actor.ci_system == "GitHub Actions" and first.actor.ci_build == "42"
    assert first.commit == "2dc9b7ff124a006e588c855bc86734e5c8146910"
    assert first.repository == "github.com/acme/gpu-fleet"
    assert sorted(c.name for c in first.of("created")) == ["a", "b"]
    # b was replaced (new Vast id, same name), a was stopped in place
    assert [c.name for c in replace.of("created")] == ["b"] and [c.name for c in replace.of("deleted")] == ["b"]
    assert replace.of("created")[0].instance_id != replace.of("deleted")[0].instance_id
    (stopped,) = replace.of("changed")
    assert stopped.name == "a" and stopped.details == ("state running -> stopped",)
    assert failed.changes == () and failed.actor.ci_system == "GitHub Actions"
    assert [c.name for c in drop.of("deleted")] == ["a"]  # read from the gzip-compressed pair
    assert [c.name for c in destroy.of("deleted")] == ["b"]
    assert all(tl.segments[-1].end is not None for tl in fold.timelines)  # all gone after destroy


def test_checkpoint_of_a_destroy_has_no_resources_key() -> None:
    last = sorted((ENGINE_DIY / ".pulumi/history/vastguard/ml-research").glob("*.checkpoint.json"))[-1]
    raw = decode_bytes(last.read_bytes(), name=last.name)
    assert "resources" not in raw["checkpoint"]["latest"]
    assert parse_checkpoint(raw, name=last.name).instances == ()


def test_synthetic_writer_matches_the_engine_shapes(tmp_path: Path) -> None:
    """Same keys at every level the reports read, so synthetic fixtures are not a world of their own."""
    real_dir = ENGINE_DIY / ".pulumi/history/vastguard/ml-research"
    real_cp = json.loads(sorted(real_dir.glob("*.checkpoint.json"))[0].read_bytes())
    real_hist = json.loads(sorted(real_dir.glob("*.history.json"))[0].read_bytes())
    writer = StackWriter(tmp_path, "ml-research", "ml-research")
    writer.rent(Rented("a", 1, "RTX 4090", 0.4))
    path = writer.record(start=utc(2026, 11, 2))
    fake_hist = json.loads(path.read_bytes())
    fake_cp = json.loads(path.with_name(path.name.replace(".history.", ".checkpoint.")).read_bytes())
    assert list(fake_hist) == list(real_hist)
    assert list(fake_cp) == list(real_cp) and list(fake_cp["checkpoint"]) == list(real_cp["checkpoint"])
    assert list(fake_cp["checkpoint"]["latest"]) == list(real_cp["checkpoint"]["latest"])
    real_inst = next(r for r in real_cp["checkpoint"]["latest"]["resources"] if r["type"].endswith("vastai:Instance"))
    fake_inst = next(r for r in fake_cp["checkpoint"]["latest"]["resources"] if r["type"].endswith("vastai:Instance"))
    assert list(fake_inst) == list(real_inst)
    assert set(real_inst["inputs"]["__provider"]) == set(fake_inst["inputs"]["__provider"])
    assert real_cp["checkpoint"]["latest"]["manifest"]["time"].endswith("Z")
    assert len(fake_cp["checkpoint"]["latest"]["manifest"]["time"]) == len(
        real_cp["checkpoint"]["latest"]["manifest"]["time"])


def test_cli_history_json_parses_like_the_files() -> None:
    """`pulumi stack history --json` prints ISO times and {value, secret} config: same records."""
    raw = json.loads((FIXTURES / "stack-history.json").read_text())
    records = [parse_update(item, name="cli") for item in raw]
    files = sorted((ENGINE_DIY / ".pulumi/history/vastguard/ml-research").glob("*.history.json"))
    from_file = parse_update(json.loads(files[0].read_bytes()), name=files[0].name)
    from_cli = records[-1]
    assert (from_cli.kind, from_cli.start_time, from_cli.message) == (
        from_file.kind, from_file.start_time, from_file.message)


def test_cli_history_pages_and_exports_each_version() -> None:
    """Pulumi Cloud: history in pages, each update's checkpoint by `stack export --version`."""
    raw = json.loads((FIXTURES / "stack-history.json").read_text())
    for version, item in enumerate(reversed(raw), start=1):
        item["version"] = version
    checkpoints = sorted((ENGINE_DIY / ".pulumi/history/vastguard/ml-research").glob("*.checkpoint.json"))
    calls: list[tuple[str, ...]] = []

    def run(*args: str, stack: str | None = None) -> str:
        calls.append(args)
        if args[:2] == ("stack", "history"):
            page, size = int(args[args.index("--page") + 1]), int(args[args.index("--page-size") + 1])
            return json.dumps(raw[(page - 1) * size:page * size])
        if args[:2] == ("stack", "export"):
            version = int(args[args.index("--version") + 1])
            if version > len(checkpoints):
                raise RuntimeError("no such version")
            cp = json.loads(checkpoints[version - 1].read_bytes())
            return json.dumps({"version": 3, "deployment": cp["checkpoint"]["latest"]})
        raise AssertionError(args)

    source = CliHistory("https://api.pulumi.com", run, stack_names=["acme/vastguard/ml-research"])
    source.page_size = 2
    (ref,) = source.stacks()
    assert ref == StackRef("acme/vastguard", "ml-research")
    assert source.count(ref) == 5
    fold = fold_stack(ref.project, ref.stack, source.entries(ref))
    assert sorted(c.name for c in fold.events[0].of("created")) == ["a", "b"]
    assert sum(1 for c in calls if c[:2] == ("stack", "history")) == 3  # pages of 2, 2, 1
    assert fold.events[0].message == "first deploy"
