"""Enforcement of Vast.ai's access control: which endpoint needs which permission category, evaluating a key's
(and in a team, its holder's role's) constraints against a request, IP allow-lists, and the default roles.
The permission documents themselves are `fleet.permissions` (shared with the client and the policy pack).

Who may do what, as Vast does it:

- A key acts on one account: its holder's own, or a team's (a key made in the team's context; docs:
  "switch to it in the console and create an API key there", vastai 1.9.1 `create team`). Everything it
  reads or changes (instances, charges, balance, members, roles, keys) is that account's.
- A request passes when the key's own document allows it and, in a team, so does the holder's role (a key
  never outgrows its holder). A document without the endpoint's category refuses; a category narrowed to
  endpoints refuses the others; an endpoint's constraints must hold for the request's parameters (a missing
  parameter fails: the key was meant for something narrower).
- Refusals are Vast's 401 "Authorization Error. Check that you have proper privileges to perform this
  action." (vast-cli issues #77, #113); the same for an address outside the key's `ip_whitelist`.

Endpoint names: `api.instance.show`, `api.instance.destroy` and `api.team.members` are Vast's (its permission
docs); the others follow their pattern and are vastguard's naming. Categories per endpoint are Vast's
backend's `x-scope` (vast-ai/docs, api-reference/openapi/yaml/auto_*.yaml) and its permissions page.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from emulator.errors import Unauthorized
from emulator.state import Account, ApiKey, Role
from fleet.permissions import Category, Constraint, PermissionSet


@dataclass(frozen=True)
class Endpoint:
    """An API endpoint as access control sees it. `category` None: any valid key (Vast's audit log has no
    scope). `audited`: the request parameters its audit-log entry keeps (None: reads are not audited)."""

    name: str
    category: Category | None
    audited: tuple[str, ...] | None = None


def _endpoints(*items: Endpoint) -> dict[str, Endpoint]:
    return {e.name: e for e in items}


ENDPOINTS: dict[str, Endpoint] = _endpoints(
    Endpoint("api.user.show", "user_read"),
    Endpoint("api.search.offers", "misc"),
    Endpoint("api.instance.create", "instance_write", ("id", "image", "disk", "label", "price")),
    Endpoint("api.instance.list", "instance_read"),
    Endpoint("api.instance.filters", "instance_read"),
    Endpoint("api.instance.show", "instance_read"),
    Endpoint("api.instance.manage", "instance_write"),  # start, stop, relabel: not among what Vast's log keeps
    Endpoint("api.instance.destroy", "instance_write", ("id",)),
    Endpoint("api.instance.change_bid", "instance_write", ("id", "price")),  # a bid is what the instance bills
    Endpoint("api.billing.charges", "billing_read"),
    Endpoint("api.machine.list", "machine_read"),
    Endpoint("api.machine.unlist", "machine_write", ("id",)),
    Endpoint("api.team.create", "user_write", ("team_name", "transfer_credit")),
    Endpoint("api.team.destroy", "user_write", ()),
    Endpoint("api.team.roles.create", "team_write", ("name", "permissions")),
    Endpoint("api.team.role", "team_read"),
    Endpoint("api.team.roles", "team_read"),
    Endpoint("api.team.roles.update", "team_write", ("id", "name", "permissions")),
    Endpoint("api.team.roles.remove", "team_write", ("name",)),
    Endpoint("api.team.invite", "team_write", ("email", "role")),
    Endpoint("api.team.members", "team_read"),
    Endpoint("api.team.members.remove", "team_write", ("id",)),
    Endpoint("api.apikey.create", "user_write", ("name", "permissions", "key_params")),
    Endpoint("api.apikey.list", "user_read"),
    Endpoint("api.apikey.show", "user_read"),
    Endpoint("api.apikey.delete", "user_write", ("id",)),
    Endpoint("api.user.transfer_credit", "billing_write", ("recipient", "amount")),
    Endpoint("api.user.audit_logs", None),
)

OWNER, MANAGER, MEMBER = "team_owner", "team_manager", "team_member"
DEFAULT_ROLES: tuple[tuple[str, str, PermissionSet], ...] = (
    # Owner: everything. Manager: everything but deleting the team (checked by identity, not category).
    # Member: "view, create, and interact with instances, but no access to billing info, team management,
    # autoscaler, machines" (docs.vast.ai/guides/teams/teams-roles; the create-team API reference).
    ("owner", OWNER, PermissionSet.full()),
    ("manager", MANAGER, PermissionSet.full()),
    ("member", MEMBER, PermissionSet.of("instance_read", "instance_write", "user_read", "misc")),
)


class Caller(NamedTuple):
    """Who is asking: the key, the account it acts on, the person holding it, and (in a team) their role.
    (A named tuple: one is built for every request.)"""

    key: ApiKey
    account: Account
    user: Account
    role: Role | None
    ip: str

    @property
    def in_team(self) -> bool:
        return self.account.kind == "team"


Params = Callable[[], Mapping[str, Any]]


def authorize(caller: Caller, endpoint: Endpoint, params: Params) -> None:
    """Raise `Unauthorized` unless the key, and in a team the holder's role, allow this request. The common
    case (a main key, or a whole category) costs a dict lookup; parameters are read only for constraints."""
    category = endpoint.category
    if category is None:
        return
    if caller.key.permissions is not None:
        _check(caller.key.permissions, "key", category, endpoint.name, params)
    if caller.role is not None:
        _check(caller.role.permissions, f"role {caller.role.name}", category, endpoint.name, params)


def _check(doc: PermissionSet, whose: str, category: Category, name: str, params: Params) -> None:
    grant = doc.grants.get(category)
    if grant is None:
        raise Unauthorized(f"{whose} lacks {category}")
    if grant.whole:
        return
    rule = grant.endpoints.get(name)
    if rule is None:
        raise Unauthorized(f"{whose} grants {category} only for {', '.join(sorted(grant.endpoints))}")
    if rule.constraints:
        values = params()
        for param, constraint in rule.constraints.items():
            if not admits(constraint, values.get(param)):
                raise Unauthorized(f"{whose} constrains {name} {param}")


def _number(value: Any) -> float | None:
    kind = type(value)
    if kind is int:
        return float(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str:
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def admits(constraint: Constraint, value: Any) -> bool:
    """Whether a request parameter's value satisfies a constraint. Path parameters arrive as text (`"1227"`):
    numbers compare as numbers whichever side spelled them. A list (bulk calls) passes when every item does."""
    if isinstance(value, list):
        return bool(value) and all(admits(constraint, v) for v in value)
    if value is None or isinstance(value, dict):
        return False
    got = _number(value)
    eq, lte, gte = constraint.eq, constraint.lte, constraint.gte
    if eq is not None:
        wanted = _number(eq)
        if wanted is not None and got is not None:
            if wanted != got:
                return False
        elif isinstance(eq, bool) or isinstance(value, bool):
            if value is not eq and str(value).lower() != str(eq).lower():
                return False
        elif str(value) != str(eq):
            return False
    if lte is not None:
        limit = _number(lte)
        if got is None or limit is None or got > limit:
            return False
    if gte is not None:
        limit = _number(gte)
        if got is None or limit is None or got < limit:
            return False
    return True


@functools.lru_cache(maxsize=1024)
def _networks(whitelist: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n) for n in whitelist)


def ip_allowed(key: ApiKey, ip: str) -> bool:
    whitelist = key.key_params.ip_whitelist
    if not whitelist:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in _networks(whitelist))
