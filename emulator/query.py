"""Each endpoint's query, parsed: the search body (`POST /api/v0/bundles/`), the instance list's and the
charges' query parameters, and the fields each of them can filter and order on, in the filter language of
`emulator.filters`. Page tokens are `emulator.tokens`.

Which fields an endpoint knows is its vocabulary: `gpu_name` compares after `fleet.gpus.normalize`,
so `RTX_4090`, `rtx 4090` and `RTX 4090` are one name. Unknown fields are a decision per endpoint: Vast
silently drops search filters it does not know (vastai-api.md, "Known quirks"), so search returns them
separately and the backend drops them unless strict search is configured; instance lists refuse them.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from emulator.billing import day_of
from emulator.errors import InvalidArgs
from emulator.filters import (
    BOOL,
    GEO,
    NUMBER,
    OPS,
    TEXT,
    VERSION,
    Condition,
    Kind,
    OrderKey,
    jsonable,
    numeric_version,
    parse_conditions,
    parse_order,
    with_tiebreak,
)
from emulator.tokens import decode_token
from fleet.gpus import normalize as _normalize

__all__ = [
    "CHARGE_ORDER",
    "CHARGE_ORDER_LATEST",
    "INSTANCE_FIELDS",
    "OFFER_ALIASES",
    "OFFER_FIELDS",
    "OPS",
    "ChargesQuery",
    "Condition",
    "InstanceListQuery",
    "SearchQuery",
    "numeric_version",
    "parse_charges",
    "parse_instance_list",
    "parse_search",
]


@functools.lru_cache(maxsize=4096)
def normalize(name: str) -> str:
    """`fleet.gpus.normalize`, memoised: every search normalises every offer's GPU name."""
    return _normalize(name)


GPU = Kind("gpu_name", "text", canonical=normalize)
_N, _B, _T = NUMBER, BOOL, TEXT

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
    "gpu_name": GPU,
    "geolocation": GEO,
    "driver_version": VERSION,
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
    "gpu_name": GPU,
    "geolocation": GEO,
    "driver_version": VERSION,
}


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
                          if jsonable(offer_type) else "search: type must be on-demand, bid or reserved")
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

