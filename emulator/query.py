"""Vast's filter language, parsed and evaluated: `{"field": {"op": value}}`, order lists and page tokens.

The same language filters offers (`POST /api/v0/bundles/`) and instances (`select_filters` on
`/api/v1/instances/`). What the real service does, and so what this does:

- operators `eq neq gt gte lt lte in notin`; several on one field are ANDed (`{"gte": 1, "lte": 4}`);
- numbers arrive as strings (the official CLI's parser leaves `num_gpus>=1` as `"1"`): coerced;
- `true`/`false` are JSON booleans (strings `"true"`/`"false"` are accepted too); `null` matches a missing
  value with `eq` and anything present with `neq`;
- `gpu_name` compares after `vastclient.gpus.normalize`, so `RTX_4090`, `rtx 4090` and `RTX 4090` are one name;
- `geolocation` is `"<region>, <CC>"` on the wire but the CLI documents filtering by country code, so a
  two-letter value compares with the code, anything longer with the whole string (case-insensitively);
- `driver_version` compares as a number: the CLI turns `535.86.05` into 535086005 before sending.

Malformed filters (a bare value instead of an operator object, an unknown operator, `gt` on text, a
non-numeric string for a number) are a 400 with a message naming the field. Unknown *fields* are a
decision: Vast silently drops filters it does not know (vastai-api.md, "Known quirks"), so the parser
returns them separately and the backend drops them unless strict search is configured.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from functools import cmp_to_key
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict

from emulator.billing import day_of
from emulator.errors import InvalidArgs
from vastclient.gpus import normalize as _normalize

Op = Literal["eq", "neq", "gt", "gte", "lt", "lte", "in", "notin"]
OPS: frozenset[str] = frozenset(get_args(Op))
RANGE_OPS = frozenset({"gt", "gte", "lt", "lte"})
T = TypeVar("T")
Row = Mapping[str, Any]


@functools.lru_cache(maxsize=4096)
def normalize(name: str) -> str:
    """`vastclient.gpus.normalize`, memoised: every search normalises every offer's GPU name."""
    return _normalize(name)


class Kind(Enum):
    NUMBER = "number"
    BOOL = "bool"
    TEXT = "text"
    GPU = "gpu_name"
    GEO = "geolocation"
    VERSION = "version"


_N, _B, _T = Kind.NUMBER, Kind.BOOL, Kind.TEXT

OFFER_FIELDS: dict[str, Kind] = {
    **{f: _N for f in (
        "id", "ask_contract_id", "bundle_id", "machine_id", "host_id", "num_gpus", "gpu_ram", "gpu_total_ram",
        "gpu_mem_bw", "gpu_max_power", "gpu_max_temp", "gpu_frac", "compute_cap", "total_flops", "dlperf",
        "dlperf_per_dphtotal", "flops_per_dphtotal", "cpu_cores", "cpu_cores_effective", "cpu_ghz", "cpu_ram",
        "disk_space", "disk_bw", "dph_base", "dph_total", "discounted_dph_total", "min_bid", "storage_cost",
        "storage_total_cost", "inet_up", "inet_down", "inet_up_cost", "inet_down_cost", "reliability",
        "reliability2", "cuda_max_good", "pci_gen", "pcie_bw", "direct_port_count", "score", "start_date",
        "end_date", "duration", "hosting_type", "bw_nvlink")},
    **{f: _B for f in (
        "rentable", "rented", "verified", "external", "datacenter", "static_ip", "has_avx", "vms_enabled",
        "gpu_display_active", "is_bid")},
    **{f: _T for f in (
        "verification", "cpu_name", "cpu_arch", "gpu_arch", "mobo_name", "disk_name", "ubuntu_version",
        "public_ipaddr")},
    "gpu_name": Kind.GPU,
    "geolocation": Kind.GEO,
    "driver_version": Kind.VERSION,
}

# The official CLI's own aliases (vastai/api/query.py `offers_alias`); other clients send them raw.
OFFER_ALIASES = {
    "cuda_vers": "cuda_max_good",
    "dph": "dph_total",
    "dlperf_usd": "dlperf_per_dphtotal",
    "flops_usd": "flops_per_dphtotal",
    "display_active": "gpu_display_active",
}

INSTANCE_FIELDS: dict[str, Kind] = {
    **{f: _N for f in (
        "id", "machine_id", "host_id", "bundle_id", "num_gpus", "gpu_ram", "gpu_totalram", "disk_space",
        "dph_base", "dph_total", "storage_cost", "min_bid", "start_date", "end_date", "duration", "ssh_port",
        "reliability2", "cuda_max_good", "inet_up", "inet_down", "cpu_ram", "cpu_cores", "template_id",
        "uptime_mins")},
    "is_bid": _B,
    **{f: _T for f in (
        "actual_status", "intended_status", "cur_state", "next_state", "status_msg", "label", "image_uuid",
        "ssh_host", "public_ipaddr", "verification", "onstart", "template_hash_id", "image_runtype")},
    "gpu_name": Kind.GPU,
    "geolocation": Kind.GEO,
    "driver_version": Kind.VERSION,
}


class Condition(BaseModel):
    model_config = ConfigDict(frozen=True)

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
    if kind is Kind.NUMBER:
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
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise _bad(where, field, f"is true or false; got {json.dumps(value)}")
    if kind is Kind.VERSION:
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
        raise _bad(where, field, f"is text; got {json.dumps(value) if _jsonable(value) else type(value).__name__}")
    text = value if isinstance(value, str) else str(value)
    if kind is Kind.GPU:
        return normalize(text)
    return text.strip()


def _jsonable(value: Any) -> bool:
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
                       if _jsonable(spec) else "needs an operator object")
        for op, value in spec.items():
            if op not in OPS:
                raise _bad(where, name, f"has unknown operator {op!r}; use one of {', '.join(sorted(OPS))}")
            if op in ("in", "notin"):
                if not isinstance(value, list):
                    shown = json.dumps(value) if _jsonable(value) else type(value).__name__
                    raise _bad(where, name, f"{op} needs a list; got {shown}")
                coerced: Any = [_scalar(kind, v, field=name, where=where) for v in value]
            elif value is None:
                if op not in ("eq", "neq"):
                    raise _bad(where, name, f"{op} needs a value, not null")
                coerced = None
            else:
                if op in RANGE_OPS and kind not in (Kind.NUMBER, Kind.VERSION):
                    raise _bad(where, name, f"is {kind.value}; {op} only compares numbers")
                coerced = _scalar(kind, value, field=name, where=where)
            conditions.append(Condition(field=field, op=op, value=coerced, kind=kind))
    return conditions, unknown


def _country(geolocation: str) -> str:
    return geolocation.rsplit(",", 1)[-1].strip().upper()


def _same(kind: Kind, actual: Any, wanted: Any) -> bool:
    if wanted is None or actual is None:
        return actual is None and wanted is None
    if kind is Kind.GEO:
        want = str(wanted).strip().upper()
        if len(want) == 2 and want.isalpha():
            return _country(str(actual)) == want
        return str(actual).strip().upper() == want
    if kind is Kind.TEXT:
        return str(actual) == str(wanted)
    return bool(actual == wanted)


def _actual(kind: Kind, value: Any) -> Any:
    """The row's value in the comparable form its kind uses."""
    if value is None:
        return None
    if kind is Kind.GPU:
        return normalize(str(value))
    if kind is Kind.VERSION:
        return numeric_version(str(value)) if isinstance(value, str) else value
    if kind is Kind.NUMBER:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind is Kind.BOOL:
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
            raise InvalidArgs(f"{where}: order entry {json.dumps(entry) if _jsonable(entry) else entry} "
                              "is not [field, \"asc\"|\"desc\"]")
        if not isinstance(name, str) or not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
            raise InvalidArgs(f"{where}: order entry {json.dumps(entry) if _jsonable(entry) else entry} "
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


def encode_token(keys: Sequence[OrderKey], values: Sequence[Any]) -> str:
    """Vast's tokens are base64 JSON of the last row's sort values (`{"values": {"id": 25078234},
    "os_page": 0}` in the official CLI's own example); ours have the same shape."""
    payload = {"values": {k.field: v for k, v in zip(keys, values, strict=True)}, "os_page": 0}
    return base64.b64encode(json.dumps(payload).encode()).decode()


def decode_token(token: str, keys: Sequence[OrderKey], *, where: str) -> list[Any]:
    try:
        payload = json.loads(base64.b64decode(token.encode(), validate=True))
        values = payload["values"]
        return [values[k.field] for k in keys]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidArgs(f"{where}: after_token is not a token from this listing with this order") from None


# ------------------------------------------------------------------------------------ request shapes

OfferType = Literal["on-demand", "bid", "reserved"]

DEFAULT_ALLOCATED_STORAGE = 5.0
"""GB priced into `dph_total` when a search does not say: the official CLI's `--storage` default, which it
sends on every search (`allocated_storage: 5.0`), so other clients get the number the CLI would show."""

SEARCH_KEYS = frozenset({"order", "type", "limit", "allocated_storage", "disable_bundling", "select_cols"})
MAX_INSTANCE_PAGE = 25
MAX_CHARGES_PAGE = 100


class SearchQuery(BaseModel):
    model_config = ConfigDict(frozen=True)

    conditions: list[Condition]
    order: list[OrderKey]
    limit: int | None
    offer_type: OfferType
    allocated_storage: float
    ignored: list[str]  # filter or order fields this language does not know
    applies_rentable: bool  # the caller said nothing about `rentable`: the server adds rentable=true


def _number(value: Any, *, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidArgs(f"{where} must be a number")
    try:
        number = float(value)
    except ValueError:
        raise InvalidArgs(f"{where} must be a number; got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidArgs(f"{where} must be a finite number")
    return number


def _positive_int(value: Any, *, where: str) -> int:
    number = _number(value, where=where)
    if not number.is_integer() or number < 1:
        raise InvalidArgs(f"{where} must be a whole number >= 1; got {value!r}")
    return int(number)


def parse_search(body: Any) -> SearchQuery:
    """`POST /api/v0/bundles/`: a flat object of filters plus `order`, `type`, `limit`, `allocated_storage`."""
    if not isinstance(body, dict):
        raise InvalidArgs("search: the body must be a JSON object of filters, e.g. "
                          '{"gpu_name": {"eq": "RTX 4090"}}')
    filters = {k: v for k, v in body.items() if k not in SEARCH_KEYS}
    conditions, ignored = parse_conditions(filters, OFFER_FIELDS, aliases=OFFER_ALIASES, where="search")
    raw_order = body.get("order")
    order, ignored_order = parse_order([["score", "desc"]] if raw_order is None else raw_order, OFFER_FIELDS,
                                       aliases=OFFER_ALIASES, where="search")
    offer_type = body.get("type", "on-demand")
    if offer_type == "interruptible":
        offer_type = "bid"
    if offer_type not in ("on-demand", "bid", "reserved"):
        raise InvalidArgs(f"search: type must be on-demand, bid or reserved; got {json.dumps(offer_type)}"
                          if _jsonable(offer_type) else "search: type must be on-demand, bid or reserved")
    limit = None if body.get("limit") is None else _positive_int(body["limit"], where="search: limit")
    storage_raw = body.get("allocated_storage")
    storage = DEFAULT_ALLOCATED_STORAGE if storage_raw is None else _number(
        storage_raw, where="search: allocated_storage")
    if storage < 0:
        raise InvalidArgs("search: allocated_storage must be >= 0 GB")
    return SearchQuery(
        conditions=conditions, order=order, limit=limit, offer_type=offer_type, allocated_storage=storage,
        ignored=ignored + ignored_order,
        applies_rentable=not any(c.field == "rentable" for c in conditions),
    )


def _json_param(params: Mapping[str, str], name: str) -> Any:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidArgs(f"{name} is not valid JSON") from None


def _bool_param(params: Mapping[str, str], name: str) -> bool:
    raw = (params.get(name) or "false").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no", "none", "null"):
        return False
    raise InvalidArgs(f"{name} must be true or false; got {raw!r}")


class InstanceListQuery(BaseModel):
    model_config = ConfigDict(frozen=True)

    conditions: list[Condition]
    order: list[OrderKey]  # tiebreak included
    limit: int
    after: list[Any] | None
    select_cols: list[str] | None  # None: full rows


def parse_instance_list(params: Mapping[str, str]) -> InstanceListQuery:
    """`GET /api/v1/instances/?select_filters=&order_by=&limit=&after_token=&select_cols=`.

    Unlike search, unknown columns here are a 400: vastguard finds its instances by label through this
    call, and a filter silently dropped would hand it someone else's instances to adopt."""
    raw_filters = _json_param(params, "select_filters")
    raw_filters = {} if raw_filters is None else raw_filters
    if not isinstance(raw_filters, dict):
        raise InvalidArgs("select_filters must be a JSON object")
    conditions, unknown = parse_conditions(raw_filters, INSTANCE_FIELDS, where="select_filters")
    if unknown:
        raise InvalidArgs(f"select_filters: unknown column(s) {', '.join(sorted(unknown))}")
    raw_order = _json_param(params, "order_by")
    order, unknown_order = parse_order([{"col": "id", "dir": "asc"}] if raw_order is None else raw_order,
                                       INSTANCE_FIELDS, where="order_by")
    if unknown_order:
        raise InvalidArgs(f"order_by: unknown column(s) {', '.join(sorted(unknown_order))}")
    order = with_tiebreak(order)
    limit = MAX_INSTANCE_PAGE if not params.get("limit") else _positive_int(params["limit"], where="limit")
    token = params.get("after_token") or None
    cols = _json_param(params, "select_cols")
    if cols is not None and (not isinstance(cols, list) or not all(isinstance(c, str) for c in cols)):
        raise InvalidArgs("select_cols must be a JSON list of column names")
    return InstanceListQuery(
        conditions=conditions, order=order, limit=min(limit, MAX_INSTANCE_PAGE),
        after=None if token is None else decode_token(token, order, where="instances"),
        select_cols=None if cols is None or "*" in cols else cols,
    )


CHARGE_ORDER = [OrderKey(field="day"), OrderKey(field="id")]
CHARGE_ORDER_LATEST = [OrderKey(field="day", descending=True), OrderKey(field="id", descending=True)]


class ChargesQuery(BaseModel):
    model_config = ConfigDict(frozen=True)

    day_from: int  # UTC midnight
    day_to: int
    types: list[str] | None
    latest_first: bool
    limit: int
    after: list[Any] | None


def parse_charges(params: Mapping[str, str]) -> ChargesQuery:
    """`GET /api/v0/charges/?select_filters={"day":{"gte":S,"lte":E},...}&latest_first=&limit=&after_token=`.

    The bounds are days: each is taken as the UTC day it falls in, both ends included, so the CLI's
    `-s 2025-11-01 -e 2025-11-30` (two midnights) means all of November and a bound at 15:00 still
    includes its day."""
    filters = _json_param(params, "select_filters")
    day = filters.get("day") if isinstance(filters, dict) else None
    if not isinstance(day, dict) or "gte" not in day or "lte" not in day:
        raise InvalidArgs('select_filters.day with gte and lte bounds (epoch seconds) is required, e.g. '
                          '{"day": {"gte": 1735689600, "lte": 1738281600}}')
    day_from = day_of(_number(day["gte"], where="select_filters.day.gte"))
    day_to = day_of(_number(day["lte"], where="select_filters.day.lte"))
    types: list[str] | None = None
    raw_type = filters.get("type") if isinstance(filters, dict) else None
    if isinstance(raw_type, dict) and raw_type:
        if "in" in raw_type and isinstance(raw_type["in"], list):
            types = [str(t) for t in raw_type["in"]]
        elif "eq" in raw_type and isinstance(raw_type["eq"], str):
            types = [raw_type["eq"]]
        else:
            raise InvalidArgs('select_filters.type must be {"in": [...]} or {"eq": "..."}')
    latest_first = _bool_param(params, "latest_first")
    limit = 20 if not params.get("limit") else _positive_int(params["limit"], where="limit")
    order = CHARGE_ORDER_LATEST if latest_first else CHARGE_ORDER
    token = params.get("after_token") or None
    return ChargesQuery(
        day_from=day_from, day_to=day_to, types=types, latest_first=latest_first,
        limit=min(limit, MAX_CHARGES_PAGE),
        after=None if token is None else decode_token(token, order, where="charges"),
    )
