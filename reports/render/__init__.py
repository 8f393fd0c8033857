"""Renderers: each output format is a function of a report model and nothing else.

Human formats round money to cents here and only here (the models keep exact Decimals); an unknown amount
prints as `unknown`, never as 0.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from fleet.costs import cents

UNKNOWN = "unknown"
HOURS = Decimal("0.01")
RATE = Decimal("0.0001")


def money(value: Decimal | None, *, symbol: str = "$") -> str:
    if value is None:
        return UNKNOWN
    rounded = cents(value)
    sign = "-" if rounded < 0 else ""
    return f"{sign}{symbol}{abs(rounded):,.2f}"


def plain_money(value: Decimal | None) -> str:
    """Cents without symbol or grouping, for CSV; empty when unknown."""
    return "" if value is None else f"{cents(value):.2f}"


def hours(value: Decimal) -> str:
    return f"{value.quantize(HOURS):,.2f}"


def plain_hours(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.0001'))}"


def rate(value: Decimal | None) -> str:
    return UNKNOWN if value is None else f"${value.quantize(RATE)}"


def plain_rate(value: Decimal | None) -> str:
    return "" if value is None else f"{value.quantize(Decimal('0.000001'))}"


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def short_commit(commit: str | None) -> str:
    return (commit or "")[:8]
