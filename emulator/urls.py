"""Routes: (method, path) -> operation name and handler. Paths match with or without a trailing slash,
as Vast's do. The operation name is what rate limits, fault rules and the request log key on.

Control-plane routes live under the reserved prefix `/_emulator/` and need no key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from emulator import responses as r
from emulator.errors import MethodNotAllowed, RouteNotFound

Handler = Callable[[r.Call], r.Response]
CONTROL_PREFIX = "/_emulator"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    handler: Handler
    auth: bool = True
    control: bool = False


def _route(method: str, path: str, operation: str, handler: Handler, *, auth: bool = True) -> Route:
    control = path.startswith(CONTROL_PREFIX + "/")
    return Route(method, re.compile(f"^{path.rstrip('/')}/?$"), operation, handler,
                 auth=auth and not control, control=control)


_ID = r"(?P<instance_id>\d+)"

ROUTES: tuple[Route, ...] = (
    _route("GET", "/api/v0/gpu_names/unique", "gpu_names", r.gpu_names, auth=False),
    _route("GET", "/api/v0/users/current", "user", r.current_user),
    _route("POST", "/api/v0/bundles", "search", r.search_offers),
    _route("GET", "/api/v0/bundles", "search", r.search_offers_query),
    _route("PUT", "/api/v0/search/asks", "search", r.search_asks),
    _route("PUT", r"/api/v0/asks/(?P<offer_id>\d+)", "create", r.create_instance),
    _route("GET", "/api/v1/instances", "list", r.list_instances),
    _route("GET", "/api/v0/instances", "list", r.list_instances_v0),
    _route("GET", "/api/v0/instances/filters", "instance_filters", r.instance_filters),
    _route("GET", f"/api/v0/instances/{_ID}", "show", r.show_instance),
    _route("PUT", f"/api/v0/instances/{_ID}", "manage", r.manage_instance),
    _route("PUT", "/api/v0/instances", "manage", r.manage_instances),
    _route("DELETE", f"/api/v0/instances/{_ID}", "destroy", r.destroy_instance),
    _route("DELETE", "/api/v0/instances", "destroy", r.destroy_instances),
    _route("GET", "/api/v0/charges", "charges", r.charges),
    # control plane
    _route("GET", "/_emulator/health", "control", r.health),
    _route("POST", "/_emulator/reset", "control", r.reset),
    _route("POST", "/_emulator/seed", "control", r.reseed),
    _route("POST", "/_emulator/offers", "control", r.add_offer),
    _route("GET", "/_emulator/accounts", "control", r.list_accounts),
    _route("POST", "/_emulator/accounts", "control", r.create_account),
    _route("POST", r"/_emulator/accounts/(?P<account_id>\d+)/balance", "control", r.set_balance),
    _route("GET", "/_emulator/clock", "control", r.get_clock),
    _route("POST", "/_emulator/clock", "control", r.set_clock),
    _route("GET", "/_emulator/config", "control", r.get_config),
    _route("POST", "/_emulator/config", "control", r.set_config),
    _route("GET", "/_emulator/faults", "control", r.list_faults),
    _route("POST", "/_emulator/faults", "control", r.add_fault),
    _route("DELETE", "/_emulator/faults", "control", r.clear_faults),
    _route("POST", f"/_emulator/instances/{_ID}/state", "control", r.force_state),
    _route("GET", "/_emulator/races", "control", r.list_races),
    _route("POST", "/_emulator/races", "control", r.add_race),
    _route("DELETE", "/_emulator/races", "control", r.clear_races),
    _route("GET", "/_emulator/requests", "control", r.list_requests),
    _route("DELETE", "/_emulator/requests", "control", r.clear_requests),
    _route("GET", "/_emulator/state", "control", r.dump_state),
)


def match(method: str, path: str) -> tuple[Route, dict[str, str]]:
    allowed: list[str] = []
    for route in ROUTES:
        m = route.pattern.match(path)
        if m is None:
            continue
        if route.method == method:
            return route, m.groupdict()
        allowed.append(route.method)
    if allowed:
        raise MethodNotAllowed(f"{method} is not allowed on {path}; use {', '.join(sorted(set(allowed)))}")
    raise RouteNotFound(f"no such endpoint: {method} {path}")
