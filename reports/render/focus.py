"""FOCUS cost-and-usage rows as CSV, the format FinOps tools import. Column ids as the header, FOCUS columns
first and `x_` custom columns after them; FOCUS's formats: date/times as `YYYY-MM-DDTHH:mm:ssZ` in UTC,
numbers as plain decimals (no exponent, no currency symbol, no grouping), null as an empty cell."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

from reports.focus import FocusExport, FocusRow

COLUMNS: tuple[str, ...] = tuple(FocusRow.model_fields)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}" if value else "0"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def focus_csv(export: FocusExport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in export.rows:
        writer.writerow([_cell(getattr(row, column)) for column in COLUMNS])
    return out.getvalue()
