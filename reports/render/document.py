"""JSON: the report model itself, with its `schema_version`; money as exact decimal strings."""

from __future__ import annotations

from pydantic import BaseModel


def to_json(report: BaseModel) -> str:
    return report.model_dump_json(indent=2) + "\n"
