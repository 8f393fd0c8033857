"""Reading history: DIY layouts on disk, compression, broken files (cloud buckets: test_cloud_backends.py)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from reports.fold import fold_stack
from reports.pulumi_state import StateFormatError
from reports.sources import SourceError, StackRef, ensure_stacks, open_source
from tests.reports.conftest import utc
from tests.reports.synthetic import Rented, StackWriter


def small_backend(root: Path, *, compress: bool = False) -> StackWriter:
    w = StackWriter(root, "ml-research", "ml-research", compress=compress)
    w.rent(Rented("a", 1, "RTX 4090", 0.4))
    w.record(start=utc(2026, 11, 1))
    w.set_state("a", "stopped")
    w.record(start=utc(2026, 11, 2))
    w.remove("a")
    w.record(start=utc(2026, 11, 3), kind="destroy")
    return w


def test_local_backend_lists_stacks_and_reads_entries_in_order(tmp_path: Path) -> None:
    small_backend(tmp_path)
    StackWriter(tmp_path, "data-science", "data-science").record(start=utc(2026, 11, 5))
    source = open_source(f"file://{tmp_path}")
    assert source.stacks() == [StackRef("vastguard", "data-science"), StackRef("vastguard", "ml-research")]
    entries = list(source.entries(StackRef("vastguard", "ml-research")))
    assert [e.sequence for e in entries] == [1, 2, 3]
    assert [e.record.kind for e in entries] == ["update", "update", "destroy"]


def test_gzip_files_and_attrs_sidecars(tmp_path: Path) -> None:
    small_backend(tmp_path, compress=True)
    history = tmp_path / ".pulumi/history/vastguard/ml-research"
    (history / "x.attrs").write_text("{}")
    entries = list(open_source(f"file://{tmp_path}").entries(StackRef("vastguard", "ml-research")))
    assert len(entries) == 3 and entries[0].snapshot is not None and len(entries[0].snapshot.instances) == 1


def test_compression_is_detected_by_content_not_name(tmp_path: Path) -> None:
    small_backend(tmp_path)
    first = sorted((tmp_path / ".pulumi/history/vastguard/ml-research").glob("*.checkpoint.json"))[0]
    first.write_bytes(gzip.compress(first.read_bytes()))
    entries = list(open_source(f"file://{tmp_path}").entries(StackRef("vastguard", "ml-research")))
    assert entries[0].snapshot is not None and entries[0].snapshot.instances[0].outputs.instance_id == 1


def test_legacy_layout_without_projects(tmp_path: Path) -> None:
    small_backend(tmp_path)
    pulumi = tmp_path / ".pulumi"
    (pulumi / "meta.yaml").unlink()
    shutil.move(pulumi / "history/vastguard/ml-research", pulumi / "history/ml-research")
    shutil.move(pulumi / "stacks/vastguard/ml-research.json", pulumi / "stacks/ml-research.json")
    source = open_source(f"file://{tmp_path}")
    assert source.stacks() == [StackRef("", "ml-research")]
    assert len(list(source.entries(StackRef("", "ml-research")))) == 3


def test_a_missing_checkpoint_is_an_event_without_changes(tmp_path: Path) -> None:
    small_backend(tmp_path)
    second = sorted((tmp_path / ".pulumi/history/vastguard/ml-research").glob("*.checkpoint.json"))[1]
    second.unlink()
    ref = StackRef("vastguard", "ml-research")
    result = fold_stack("vastguard", "ml-research", open_source(f"file://{tmp_path}").entries(ref))
    assert [e.checkpoint_missing for e in result.events] == [False, True, False]


def test_broken_and_zstd_files_name_themselves(tmp_path: Path) -> None:
    small_backend(tmp_path)
    files = sorted((tmp_path / ".pulumi/history/vastguard/ml-research").glob("*.history.json"))
    files[0].write_text("{not json")
    ref = StackRef("vastguard", "ml-research")
    with pytest.raises(StateFormatError, match=files[0].name):
        list(open_source(f"file://{tmp_path}").entries(ref))
    files[0].write_bytes(b"\x28\xb5\x2f\xfd rest")
    with pytest.raises(StateFormatError, match="zstd"):
        list(open_source(f"file://{tmp_path}").entries(ref))


def test_unknown_locations_and_filters_fail_with_advice(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no Pulumi state"):
        open_source(f"file://{tmp_path}")
    with pytest.raises(SourceError, match="gs://"):
        open_source("gs://bucket")
    small_backend(tmp_path)
    source = open_source(f"file://{tmp_path}")
    with pytest.raises(SourceError, match="vastguard/ml-research"):
        ensure_stacks(source, stacks=["nope"])
    assert ensure_stacks(source, stacks=["ml-research"]) == [StackRef("vastguard", "ml-research")]


def test_unchanged_resources_are_parsed_once_and_changes_are_not_missed(tmp_path: Path) -> None:
    w = StackWriter(tmp_path, "s", "t")
    w.rent(Rented("a", 1, "RTX 4090", 0.4))
    w.rent(Rented("b", 2, "RTX 4090", 0.4))
    w.record(start=utc(2026, 11, 1))
    w.set_state("b", "stopped")
    w.record(start=utc(2026, 11, 2))
    first, second = (e.snapshot for e in open_source(f"file://{tmp_path}").entries(StackRef("vastguard", "s")))
    assert first is not None and second is not None
    assert second.instances[0] is first.instances[0]  # `a` untouched: the same parsed object
    assert second.instances[1] is not first.instances[1]
    assert second.instances[1].outputs.state == "stopped"
