"""Renderers against golden files (regenerate with VASTGUARD_UPDATE_GOLDEN=1), JSON schema, and the PNG."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from reports.audit import audit_report
from reports.costing import chargeback_report, spend_report
from reports.fold import fold_stack
from reports.models import SCHEMA_VERSION, ChargebackReport, StackFold
from reports.reconcile import reconcile
from reports.render.delimited import audit_csv, invoice_csv, reconcile_csv, spend_csv
from reports.render.document import to_json
from reports.render.markdown import invoice_markdown
from reports.render.png import PALETTE, daily_spend_png, encode_png
from reports.render.table import audit_table, chargeback_table, reconcile_tables, spend_table, to_text
from reports.sources import open_source
from tests.reports.conftest import utc
from tests.reports.scenarios import MONTH, NOW, november
from vastclient.models import Charge

Golden = Callable[[str, str | bytes], None]


@pytest.fixture(scope="module")
def folds(tmp_path_factory: pytest.TempPathFactory) -> list[StackFold]:
    root = tmp_path_factory.mktemp("november")
    november(root)
    source = open_source(f"file://{root}")
    return [fold_stack(ref.project, ref.stack, source.entries(ref)) for ref in source.stacks()]


@pytest.fixture(scope="module")
def chargeback(folds: list[StackFold]) -> ChargebackReport:
    return chargeback_report([tl for f in folds for tl in f.timelines], month=MONTH, now=NOW, generated_at=NOW)


def test_audit_renderers(folds: list[StackFold], golden: Golden) -> None:
    report = audit_report(folds, generated_at=NOW)
    golden("audit.txt", to_text([audit_table(report)]))
    golden("audit.csv", audit_csv(report))
    document = json.loads(to_json(report))
    assert document["schema_version"] == SCHEMA_VERSION and document["report"] == "audit"
    assert document["events"][0]["actor"]["who"] == "Ada Lovelace (committed by CI Bot) via GitHub Actions #30"


def test_audit_filters_by_team_kind_and_time(folds: list[StackFold]) -> None:
    refreshes = audit_report(folds, generated_at=NOW, kinds=["refresh", "destroy"])
    assert [(e.stack, e.kind) for e in refreshes.events] == [("ml-research", "refresh"), ("ml-research", "destroy")]
    window = audit_report(folds, generated_at=NOW, since=utc(2026, 11, 10), until=utc(2026, 11, 11),
                          teams=["ml-engineering"])
    assert [e.message for e in window.events] == ["run eval", "park eval"]


def test_spend_renderers(folds: list[StackFold], golden: Golden) -> None:
    timelines = [tl for f in folds for tl in f.timelines]
    monthly = spend_report(timelines, start=utc(2026, 11, 1), end=utc(2026, 12, 1), now=NOW, granularity="month",
                           generated_at=NOW)
    golden("spend-month.txt", to_text([spend_table(monthly)]))
    golden("spend-month-detail.txt", to_text([spend_table(monthly, detail=True)]))
    daily = spend_report(timelines, start=utc(2026, 11, 8), end=utc(2026, 11, 13), now=NOW, granularity="day",
                         generated_at=NOW)
    golden("spend-days.txt", to_text([spend_table(daily)]))
    golden("spend-days.csv", spend_csv(daily))
    document = json.loads(to_json(monthly))
    assert document["schema_version"] == SCHEMA_VERSION
    assert Decimal(document["known"]) == monthly.known  # exact, as a string


def test_chargeback_renderers(chargeback: ChargebackReport, golden: Golden) -> None:
    golden("chargeback.txt", to_text([chargeback_table(chargeback)]))
    for invoice in chargeback.invoices:
        golden(f"invoice-{invoice.team}.md", invoice_markdown(invoice))
        golden(f"invoice-{invoice.team}.csv", invoice_csv(invoice))


def test_reconcile_renderers(folds: list[StackFold], golden: Golden) -> None:
    def charge(iid: int, amount: str, label: str) -> Charge:
        return Charge.model_validate({"type": "instance", "source": f"instance-{iid}", "amount": amount,
                                      "metadata": {"label": label}})

    report = reconcile([tl for f in folds for tl in f.timelines],
                       {"ml-research": [charge(3001, "1873.33", "ml-research/pretrain-0"),
                                        charge(3002, "265.11", "ml-research/finetune-0"),
                                        charge(3004, "480.00", "ml-research/finetune-0"),
                                        charge(3003, "84.44", "ml-research/finetune-1"),
                                        charge(9911, "52.80", "bench test")]},
                       start_day=date(2026, 11, 1), end_day=date(2026, 11, 30), now=NOW, threshold=Decimal("0.01"),
                       generated_at=NOW)
    golden("reconcile.txt", to_text(reconcile_tables(report)))
    golden("reconcile.csv", reconcile_csv(report))
    assert [r.status for r in report.rows] == ["under", "shadow"]


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """Enough of a PNG decoder for our own files: checks signature and CRCs, undoes filter 0."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    idat = b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF, tag
        if tag == b"IDAT":
            idat += body
        chunks[tag] = body
        pos += 12 + length
    assert b"IEND" in chunks
    width, height, depth, color_type, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, color_type) == (8, 2)
    raw = zlib.decompress(idat)
    stride = width * 3 + 1
    assert len(raw) == stride * height and all(raw[y * stride] == 0 for y in range(height))
    return width, height, b"".join(raw[y * stride + 1:(y + 1) * stride] for y in range(height))


def test_png_chart_decodes_and_shows_every_team(chargeback: ChargebackReport, tmp_path: Path) -> None:
    data = daily_spend_png(chargeback)
    width, height, pixels = decode_png(data)
    assert width > 700 and height > 400
    colours = {pixels[i:i + 3] for i in range(0, len(pixels), 3)}
    for index in range(len(chargeback.invoices)):
        assert bytes(PALETTE[index]) in colours  # a bar or legend swatch per team
    assert daily_spend_png(chargeback) == data  # deterministic


def test_png_encoder_round_trips_pixels() -> None:
    pixels = bytes(range(256)) * 3 * 4
    width, height, decoded = decode_png(encode_png(32, 32, pixels))
    assert (width, height, decoded) == (32, 32, pixels)
    with pytest.raises(ValueError, match="bytes of RGB"):
        encode_png(2, 2, b"\x00")
