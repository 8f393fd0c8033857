"""Vast's filter language, parsed and evaluated: `{"field": {"op": value}}` conditions and order lists.

The same language filters offers (`POST /api/v0/bundles/`) and instances (`select_filters` on
`/api/v1/instances/`); which fields each of them knows, and how, is the endpoint's vocabulary
(`emulator.query`). What the real service does, and so what this does:

- operators `eq neq gt gte lt lte in notin`; several on one field are ANDed (`{"gte": 1, "lte": 4}`);
- numbers arrive as strings (the official CLI's parser leaves `num_gpus>=1` as `"1"`): coerced;
- `true`/`false` are JSON booleans (strings `"true"`/`"false"` are accepted too); `null` matches a missing
  value with `eq` and anything present with `neq`;
- a text field may name a canonical form both sides are compared in (GPU names: `RTX_4090`, `rtx 4090` and
  `RTX 4090` are one name);
- `geolocation` is `"<region>, <CC>"` on the wire but the CLI documents filtering by country code, so a
  two-letter value compares with the code, anything longer with the whole string (case-insensitively);
- `driver_version` compares as a number: the CLI turns `535.86.05` into 535086005 before sending.

Malformed filters (a bare value instead of an operator object, an unknown operator, `gt` on text, a
non-numeric string for a number) are a 400 with a message naming the field. Unknown *fields* are returned
separately, for the endpoint to judge (search drops them, as Vast does; instance lists refuse them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict

from emulator.errors import InvalidArgs

Op = Literal["eq", "neq", "gt", "gte", "lt", "lte", "in", "notin"]
OPS: frozenset[str] = frozenset(get_args(Op))
RANGE_OPS = frozenset({"gt", "gte", "lt", "lte"})
T = TypeVar("T")
Row = Mapping[str, Any]

Compare = Literal["number", "bool", "text", "geolocation", "version"]


@dataclass(frozen=True)
class Kind:
    """How a field's values are coerced and compared. `value` names it in error messages; `canonical` (text
    kinds only) maps both the filter's and the row's value to one spelling before comparing."""

    value: str
    compare: Compare
    canonical: Callable[[str], str] | None = None


NUMBER = Kind("number", "number")
BOOL = Kind("bool", "bool")
TEXT = Kind("text", "text")
GEO = Kind("geolocation", "geolocation")
VERSION = Kind("version", "version")


class Condition(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    field: str
    op: Op
    value: Any
    kind: Kind


class OrderKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    descending: bool = False


def numeric_version(text: str) -> int | None:
    """`535.86.05` -> 535086005, the official CLI's encoding of driver versions for comparisons."""
    parts = text.strip().split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int("".join(p.zfill(3) for p in parts))


def _bad(where: str, field: str, why: str) -> InvalidArgs:
    return InvalidArgs(f"{where}: '{field}' {why}")


def _scalar(kind: Kind, value: Any, *, field: str, where: str) -> Any:
    if value is None:
        return None
    if kind.compare == "number":
        if isinstance(value, bool):
            raise _bad(where, field, f"is a number; got boolean {json.dumps(value)}")
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise _bad(where, field, f"is a number; got {value!r}") from None
        else:
            raise _bad(where, field, f"is a number; got {type(value).__name__}")
        if not math.isfinite(number):
            raise _bad(where, field, f"is a number; got {value!r}")
        return number
    if kind.compare == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise _bad(where, field, f"is true or false; got {json.dumps(value)}")
    if kind.compare == "version":
        if isinstance(value, str):
            encoded = numeric_version(value)
            if encoded is not None:
                return encoded
            try:
                return int(float(value.strip()))
            except ValueError:
                raise _bad(where, field, f"is a driver version like 535.86.05; got {value!r}") from None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
        raise _bad(where, field, f"is a driver version like 535.86.05; got {json.dumps(value)}")
    # Text-like kinds.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad(where, field, f"is text; got {json.dumps(value) if jsonable(value) else type(value).__name__}")
    text = value if isinstance(value, str) else str(value)
    if kind.canonical is not None:
        return kind.canonical(text)
    return text.strip()


def jsonable(value: Any) -> bool:
    """Whether `value` can be shown as JSON in an error message."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def parse_conditions(raw: Mapping[str, Any], fields: Mapping[str, Kind], *, aliases: Mapping[str, str] | None = None,
                     where: str) -> tuple[list[Condition], list[str]]:
    """Typed conditions, plus the field names this language does not know (for the caller to judge)."""
    aliases = aliases or {}
    conditions: list[Condition] = []
    unknown: list[str] = []
    for name, spec in raw.items():
        field = aliases.get(name, name)
        kind = fields.get(field)
        if kind is None:
            unknown.append(name)
            continue
        if not isinstance(spec, dict):
            raise _bad(where, name, f'needs an operator object such as {{"eq": ...}}; got {json.dumps(spec)}'
                       if jsonable(spec) else "needs an operator object")
        for op, value in spec.items():
            if op not in OPS:
                raise _bad(where, name, f"has unknown operator {op!r}; use one of {', '.join(sorted(OPS))}")
            if op in ("in", "notin"):
                if not isinstance(value, list):
                    shown = json.dumps(value) if jsonable(value) else type(value).__name__
                    raise _bad(where, name, f"{op} needs a list; got {shown}")
                coerced: Any = [_scalar(kind, v, field=name, where=where) for v in value]
            elif value is None:
                if op not in ("eq", "neq"):
                    raise _bad(where, name, f"{op} needs a value, not null")
                coerced = None
            else:
                if op in RANGE_OPS and kind.compare not in ("number", "version"):
                    raise _bad(where, name, f"is {kind.value}; {op} only compares numbers")
                coerced = _scalar(kind, value, field=name, where=where)
            conditions.append(Condition(field=field, op=op, value=coerced, kind=kind))
    return conditions, unknown


def _country(geolocation: str) -> str:
    return geolocation.rsplit(",", 1)[-1].strip().upper()


def _same(kind: Kind, actual: Any, wanted: Any) -> bool:
    if wanted is None or actual is None:
        return actual is None and wanted is None
    if kind.compare == "geolocation":
        want = str(wanted).strip().upper()
        if len(want) == 2 and want.isalpha():
            return _country(str(actual)) == want
        return str(actual).strip().upper() == want
    if kind.compare == "text" and kind.canonical is None:
        return str(actual) == str(wanted)
    return bool(actual == wanted)


def _actual(kind: Kind, value: Any) -> Any:
    """The row's value in the comparable form its kind uses."""
    if value is None:
        return None
    if kind.canonical is not None:
        return kind.canonical(str(value))
    if kind.compare == "version":
        return numeric_version(str(value)) if isinstance(value, str) else value
    if kind.compare == "number":
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind.compare == "bool":
        return bool(value)
    return value


def matches(row: Mapping[str, Any], conditions: Iterable[Condition]) -> bool:
    for c in conditions:
        actual = _actual(c.kind, row.get(c.field))
        if c.op == "eq":
            ok = _same(c.kind, actual, c.value)
        elif c.op == "neq":
            ok = not _same(c.kind, actual, c.value)
        elif c.op == "in":
            ok = any(_same(c.kind, actual, v) for v in c.value)
        elif c.op == "notin":
            ok = not any(_same(c.kind, actual, v) for v in c.value)
        else:
            if actual is None or c.value is None:
                ok = False
            elif c.op == "gt":
                ok = actual > c.value
            elif c.op == "gte":
                ok = actual >= c.value
            elif c.op == "lt":
                ok = actual < c.value
            else:
                ok = actual <= c.value
        if not ok:
            return False
    return True


def parse_order(raw: Any, fields: Mapping[str, Kind], *, aliases: Mapping[str, str] | None = None,
                where: str) -> tuple[list[OrderKey], list[str]]:
    """Accepts both spellings seen on the wire: `[["score", "desc"], ...]` (search) and
    `[{"col": "id", "dir": "asc"}, ...]` (instance lists). Unknown fields come back separately."""
    aliases = aliases or {}
    if not isinstance(raw, list):
        raise InvalidArgs(f"{where}: order must be a list of [field, \"asc\"|\"desc\"] pairs")
    keys: list[OrderKey] = []
    unknown: list[str] = []
    for entry in raw:
        if isinstance(entry, list | tuple) and 1 <= len(entry) <= 2:
            name, direction = entry[0], (entry[1] if len(entry) == 2 else "asc")
        elif isinstance(entry, dict) and "col" in entry:
            name, direction = entry["col"], entry.get("dir", "asc")
        elif isinstance(entry, str):
            name, direction = entry, "asc"
        else:
            raise InvalidArgs(f"{where}: order entry {json.dumps(entry) if jsonable(entry) else entry} "
                              "is not [field, \"asc\"|\"desc\"]")
        if not isinstance(name, str) or not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
            raise InvalidArgs(f"{where}: order entry {json.dumps(entry) if jsonable(entry) else entry} "
                              "is not [field, \"asc\"|\"desc\"]")
        field = aliases.get(name, name)
        if field not in fields:
            unknown.append(name)
            continue
        keys.append(OrderKey(field=field, descending=direction.lower() == "desc"))
    return keys, unknown


def _cmp(a: Any, b: Any) -> int:
    """Postgres order: nulls sort after everything ascending (so first descending)."""
    if a is None or b is None:
        return (a is None) - (b is None)
    try:
        return int(a > b) - int(a < b)
    except TypeError:
        return int(str(a) > str(b)) - int(str(a) < str(b))


def compare_keys(a: Sequence[Any], b: Sequence[Any], keys: Sequence[OrderKey]) -> int:
    for x, y, key in zip(a, b, keys, strict=True):
        c = _cmp(x, y)
        if c:
            return -c if key.descending else c
    return 0


def with_tiebreak(keys: Sequence[OrderKey]) -> list[OrderKey]:
    """Keyset pagination needs a total order: end every ordering with `id`."""
    out = list(keys)
    if not any(k.field == "id" for k in out):
        out.append(OrderKey(field="id"))
    return out


def sort_key_of(row: Mapping[str, Any], keys: Sequence[OrderKey]) -> list[Any]:
    return [row.get(k.field) for k in keys]


def sort_pairs(pairs: Sequence[tuple[Row, T]], keys: Sequence[OrderKey]) -> list[tuple[Row, T]]:
    """Sort (wire row, object) pairs by the rows' values under `keys`."""

    def cmp(a: tuple[Row, T], b: tuple[Row, T]) -> int:
        return compare_keys(sort_key_of(a[0], keys), sort_key_of(b[0], keys), keys)

    return sorted(pairs, key=cmp_to_key(cmp))

