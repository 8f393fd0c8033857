"""Routes: (method, path) -> operation name and handler. Paths match with or without a trailing slash,
as Vast's do. The operation name is what rate limits, fault rules and the request log key on.

Every API route names its endpoint (`emulator.access.ENDPOINTS`): the permission category a key needs for it,
and what of it the audit log keeps. Control-plane routes live under the reserved prefix `/_emulator/` and
need no key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from emulator import responses as r
from emulator.access import ENDPOINTS, Endpoint
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
    endpoint: Endpoint | None = None


def _route(method: str, path: str, operation: str, handler: Handler, *, auth: bool = True,
           endpoint: str | None = None) -> Route:
    control = path.startswith(CONTROL_PREFIX + "/")
    if not control and auth and endpoint is None:
        raise ValueError(f"{method} {path} needs an endpoint name: every API call is checked against a key's rights")
    return Route(method, re.compile(f"^{path.rstrip('/')}/?$"), operation, handler,
                 auth=auth and not control, control=control,
                 endpoint=ENDPOINTS[endpoint] if endpoint is not None else None)


_ID = r"(?P<instance_id>\d+)"

ROUTES: tuple[Route, ...] = (
    _route("GET", "/api/v0/gpu_names/unique", "gpu_names", r.gpu_names, auth=False),
    _route("GET", "/api/v0/users/current", "user", r.current_user, endpoint="api.user.show"),
    _route("POST", "/api/v0/bundles", "search", r.search_offers, endpoint="api.search.offers"),
    _route("GET", "/api/v0/bundles", "search", r.search_offers_query, endpoint="api.search.offers"),
    _route("PUT", "/api/v0/search/asks", "search", r.search_asks, endpoint="api.search.offers"),
    _route("PUT", r"/api/v0/asks/(?P<offer_id>\d+)", "create", r.create_instance, endpoint="api.instance.create"),
    _route("GET", "/api/v1/instances", "list", r.list_instances, endpoint="api.instance.list"),
    _route("GET", "/api/v0/instances", "list", r.list_instances_v0, endpoint="api.instance.list"),
    _route("GET", "/api/v0/instances/filters", "instance_filters", r.instance_filters,
           endpoint="api.instance.filters"),
    _route("GET", f"/api/v0/instances/{_ID}", "show", r.show_instance, endpoint="api.instance.show"),
    _route("PUT", f"/api/v0/instances/{_ID}", "manage", r.manage_instance, endpoint="api.instance.manage"),
    _route("PUT", f"/api/v0/instances/bid_price/{_ID}", "bid", r.change_bid, endpoint="api.instance.change_bid"),
    _route("PUT", "/api/v0/instances", "manage", r.manage_instances, endpoint="api.instance.manage"),
    _route("DELETE", f"/api/v0/instances/{_ID}", "destroy", r.destroy_instance, endpoint="api.instance.destroy"),
    _route("DELETE", "/api/v0/instances", "destroy", r.destroy_instances, endpoint="api.instance.destroy"),
    _route("GET", "/api/v0/charges", "charges", r.charges, endpoint="api.billing.charges"),
    _route("GET", "/api/v0/machines", "machines", r.machines, endpoint="api.machine.list"),
    _route("DELETE", r"/api/v0/machines/(?P<id>\d+)/asks", "machines", r.unlist_machine, endpoint="api.machine.unlist"),
    # teams, roles, members (a role is named in the path to show or remove it, numbered to update it)
    _route("POST", "/api/v0/team", "team", r.create_team, endpoint="api.team.create"),
    _route("DELETE", "/api/v0/team", "team", r.destroy_team, endpoint="api.team.destroy"),
    _route("POST", "/api/v0/team/roles", "roles", r.create_role, endpoint="api.team.roles.create"),
    _route("GET", "/api/v0/team/roles-full", "roles", r.list_roles, endpoint="api.team.roles"),
    _route("GET", "/api/v0/team/roles/(?P<name>[^/]+)", "roles", r.show_role, endpoint="api.team.role"),
    _route("PUT", "/api/v0/team/roles/(?P<id>[^/]+)", "roles", r.update_role, endpoint="api.team.roles.update"),
    _route("DELETE", "/api/v0/team/roles/(?P<name>[^/]+)", "roles", r.remove_role, endpoint="api.team.roles.remove"),
    _route("POST", "/api/v0/team/invite", "members", r.invite_member, endpoint="api.team.invite"),
    _route("GET", "/api/v0/team/members", "members", r.list_members, endpoint="api.team.members"),
    _route("DELETE", r"/api/v0/team/members/(?P<id>\d+)", "members", r.remove_member,
           endpoint="api.team.members.remove"),
    # API keys, credit, audit log
    _route("POST", "/api/v0/auth/apikeys", "apikeys", r.create_api_key, endpoint="api.apikey.create"),
    _route("GET", "/api/v0/auth/apikeys", "apikeys", r.list_api_keys, endpoint="api.apikey.list"),
    _route("GET", r"/api/v0/auth/apikeys/(?P<id>\d+)", "apikeys", r.show_api_key, endpoint="api.apikey.show"),
    _route("DELETE", r"/api/v0/auth/apikeys/(?P<id>\d+)", "apikeys", r.delete_api_key, endpoint="api.apikey.delete"),
    _route("PUT", "/api/v0/commands/transfer_credit", "credit", r.transfer_credit,
           endpoint="api.user.transfer_credit"),
    _route("GET", "/api/v0/audit_logs", "audit", r.audit_logs, endpoint="api.user.audit_logs"),
    # control plane
    _route("GET", "/_emulator/health", "control", r.health),
    _route("POST", "/_emulator/reset", "control", r.reset),
    _route("POST", "/_emulator/seed", "control", r.reseed),
    _route("POST", "/_emulator/offers", "control", r.add_offer),
    _route("GET", "/_emulator/accounts", "control", r.list_accounts),
    _route("POST", "/_emulator/accounts", "control", r.create_account),
    _route("GET", r"/_emulator/accounts/(?P<account_id>\d+)", "control", r.get_account),
    _route("POST", r"/_emulator/accounts/(?P<account_id>\d+)/balance", "control", r.set_balance),
    _route("POST", "/_emulator/teams", "control", r.seed_team),
    _route("POST", r"/_emulator/teams/(?P<team_id>\d+)/keys", "control", r.seed_team_key),
    _route("POST", r"/_emulator/teams/(?P<team_id>\d+)/invitations/accept", "control", r.accept_invitation),
    _route("GET", "/_emulator/invitations", "control", r.list_invitations),
    _route("GET", "/_emulator/clock", "control", r.get_clock),
    _route("POST", "/_emulator/clock", "control", r.set_clock),
    _route("GET", "/_emulator/config", "control", r.get_config),
    _route("POST", "/_emulator/config", "control", r.set_config),
    _route("GET", "/_emulator/faults", "control", r.list_faults),
    _route("POST", "/_emulator/faults", "control", r.add_fault),
    _route("DELETE", "/_emulator/faults", "control", r.clear_faults),
    _route("POST", f"/_emulator/instances/{_ID}/state", "control", r.force_state),
    _route("GET", "/_emulator/demand", "control", r.list_demand),
    _route("POST", "/_emulator/demand", "control", r.add_demand),
    _route("DELETE", r"/_emulator/demand/(?P<demand_id>\d+)", "control", r.end_demand),
    _route("POST", f"/_emulator/instances/{_ID}/gpu_util", "control", r.set_gpu_util),
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
