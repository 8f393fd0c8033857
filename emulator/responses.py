"""Handlers: parse the request, call the backend, serialise the result. No marketplace logic lives here.

Every handler takes a `Call` and returns a `Response`. Errors are raised as `emulator.errors` types and
turned into responses in one place (`error_response`), so a malformed body, an unknown field or a bad
query parameter always comes back as a Vast-shaped 4xx, never a 500 with a traceback.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from emulator import billing
from emulator.access import Caller
from emulator.bodies import (
    AcceptInvitationBody,
    AccountBody,
    BalanceBody,
    BulkDestroyBody,
    BulkManageBody,
    ChangeBidBody,
    ClockBody,
    ConfigBody,
    CreateApiKeyBody,
    CreateInstanceBody,
    CreateRoleBody,
    CreateTeamBody,
    DemandBody,
    FaultBody,
    ForceStateBody,
    InviteBody,
    ManageInstanceBody,
    OfferBody,
    RaceBody,
    RemoveRoleBody,
    ResetBody,
    SeedBody,
    TeamBody,
    TeamKeyBody,
    TransferCreditBody,
    UpdateRoleBody,
)
from emulator.errors import AuthError, InvalidArgs, InvalidRequest, RateLimited, Unauthorized, VastError
from emulator.faults import FaultRule
from emulator.models import MarketBackend
from emulator.query import parse_charges, parse_instance_list, parse_search
from emulator.results import ClockReading, UserView
from emulator.state import Account, Demand
from emulator.utilization import GpuUtilBody
from emulator.views import (
    api_key_row,
    audit_row,
    charge_row,
    instance_row,
    member_row,
    offer_row,
    permissions_json,
    role_row,
    user_row,
)

M = TypeVar("M", bound=BaseModel)

JSON_TYPE = "application/json"  # exactly: the official CLI rejects `application/json; charset=utf-8`


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""
    client_ip: str = "127.0.0.1"  # the peer's address (what a key's ip_whitelist is judged on)


@dataclass
class Response:
    status: int
    payload: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering (an injected network failure)
    audit: dict[str, Any] = field(default_factory=dict)  # what the audit-log entry adds (a new id), never sent

    def encode(self) -> tuple[bytes, str]:
        if self.text is not None:
            return self.text.encode(), "text/plain"
        return json.dumps(self.payload, default=_json_default).encode(), JSON_TYPE


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def ok(payload: Any, *, status: int = 200, headers: dict[str, str] | None = None,
       audit: dict[str, Any] | None = None) -> Response:
    return Response(status=status, payload=payload, headers=headers or {}, audit=audit or {})


DENIED_HEADER = "X-Emulator-Denied"
"""Why a key was refused (`key lacks instance_write`, `ip_whitelist`): Vast's body says only "Authorization
Error", so the emulator says what was missing here, beside it."""


def _header_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.,:;()/ \-]", "?", text)[:300]


def error_response(err: VastError) -> Response:
    if isinstance(err, RateLimited):
        return Response(status=429, text=err.msg, headers={"Retry-After": f"{err.retry_after:g}"})
    headers = {DENIED_HEADER: _header_safe(err.denied)} if isinstance(err, Unauthorized) else {}
    return Response(status=err.status, payload=err.body(), headers=headers)


def fault_response(rule: FaultRule) -> Response:
    if rule.status == 0:
        return Response(status=0, drop=True)
    headers = dict(rule.headers)
    if isinstance(rule.body, str):
        return Response(status=rule.status, text=rule.body, headers=headers)
    body = rule.body if rule.body is not None else {
        "success": False, "error": "injected_fault", "msg": f"injected fault #{rule.id} ({rule.operation})"}
    return Response(status=rule.status, payload=body, headers=headers)


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


PATH_ALIASES = {"instance_id": "id", "offer_id": "id"}
BODY_ALIASES = {"ids": "id", "instance_ids": "id"}
NEVER_PARAMS = frozenset({"api_key"})


@dataclass
class Call:
    market: MarketBackend
    request: Request
    params: Mapping[str, str]
    caller: Caller | None = None

    @property
    def who(self) -> Caller:
        if self.caller is None:
            raise AuthError()
        return self.caller

    @property
    def user(self) -> Account:
        """The account the caller's key acts on (a team's, for a key made in the team's context)."""
        return self.who.account

    @functools.cached_property
    def _parsed(self) -> tuple[Any, InvalidRequest | None]:
        raw = self.request.body.strip()
        if not raw:
            return {}, None
        try:
            return json.loads(raw), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, InvalidRequest(f"the request body is not valid JSON: {exc}")

    def json(self) -> Any:
        data, error = self._parsed
        if error is not None:
            raise error
        return data

    def request_params(self) -> dict[str, Any]:
        """The request's parameters, as constraints and the audit log see them: path parameters (an instance's
        or offer's as `id`) over the JSON body's fields (bulk `ids` as `id`) over the query (never `api_key`)."""
        return self._request_params

    @functools.cached_property
    def _request_params(self) -> dict[str, Any]:
        query = self.request.query
        found: dict[str, Any] = {k: v for k, v in query.items() if k not in NEVER_PARAMS} if query else {}
        body, _ = self._parsed
        if isinstance(body, dict) and body:
            found.update({BODY_ALIASES.get(str(k), str(k)): v for k, v in body.items() if k not in NEVER_PARAMS})
        found.update({PATH_ALIASES.get(k, k): v for k, v in self.params.items()})
        return found

    def body(self, model: type[M]) -> M:
        data = self.json()
        if not isinstance(data, dict):
            raise InvalidArgs("the request body must be a JSON object")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise InvalidArgs(validation_message(exc)) from None

    def int_param(self, name: str) -> int:
        return int(self.params[name])


# -------------------------------------------------------------------------------------------- the API


def gpu_names(call: Call) -> Response:
    return ok({"gpu_names": call.market.gpu_names()})


def current_user(call: Call) -> Response:
    return ok(user_row(call.market.current_user(call.user), key_id=call.who.key.id))


def _search(call: Call, body: Any) -> Response:
    result = call.market.search_offers(call.user, parse_search(body))
    # Field names come from the client: keep the header to safe characters (no CR/LF, nothing non-latin-1).
    names = [re.sub(r"[^A-Za-z0-9_.\-]", "?", name) for name in result.ignored]
    headers = {"X-Emulator-Ignored-Filters": ",".join(names)} if names else {}
    return ok({"offers": [offer_row(q, result.now) for q in result.quotes]}, headers=headers)


def search_offers(call: Call) -> Response:
    return _search(call, call.json())


def search_offers_query(call: Call) -> Response:
    """`GET /api/v0/bundles/?q=<json>`: an older spelling some third-party clients still use."""
    raw = call.request.query.get("q")
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise InvalidArgs("q is not valid JSON") from None
    return _search(call, body)


def search_asks(call: Call) -> Response:
    """`PUT /api/v0/search/asks/` `{"select_cols": [...], "q": {...}}`: `vastai search offers --new`."""
    body = call.json()
    query = body.get("q", {}) if isinstance(body, dict) else body
    return _search(call, query)


def create_instance(call: Call) -> Response:
    body = call.body(CreateInstanceBody)
    inst = call.market.create_instance(call.user, call.int_param("offer_id"), body)
    if inst.outbid_since is not None:
        # Vast's answer to a rent that starts stopped: `success` false beside the new contract (backend:
        # "success is true if the container started running, false if it started in stopped state").
        return ok({"success": False, "new_contract": inst.id, "error": "outbid",
                   "msg": f"instance {inst.id} created, paused: its bid does not win the machine now; it starts "
                          "when it does"}, audit={"new_contract": inst.id})
    return ok({"success": True, "new_contract": inst.id}, audit={"new_contract": inst.id})


def change_bid(call: Call) -> Response:
    call.market.change_bid(call.user, call.int_param("instance_id"), call.body(ChangeBidBody))
    return ok({"success": True})


def _project(row: dict[str, Any], cols: list[str] | None) -> dict[str, Any]:
    return row if cols is None else {c: row.get(c) for c in cols}


def list_instances(call: Call) -> Response:
    page = call.market.list_instances(call.user, parse_instance_list(call.request.query))
    return ok({
        "success": True,
        "instances_found": page.found,
        "total_instances": page.total,
        "label_counts": page.label_counts,
        "next_token": page.next_token,
        "instances": [_project(instance_row(i, page.now), page.select_cols) for i in page.instances],
    })


def list_instances_v0(call: Call) -> Response:
    instances, now = call.market.all_instances(call.user)
    return ok({"instances": [instance_row(i, now) for i in instances]})


def show_instance(call: Call) -> Response:
    inst, now = call.market.show_instance(call.user, call.int_param("instance_id"))
    return ok({"instances": None if inst is None else instance_row(inst, now)})


def instance_filters(call: Call) -> Response:
    combos = call.market.instance_filters(call.user)
    return ok({"filters": [{"actual_status": s, "verification": v, "gpu_name": g} for s, v, g in combos]})


def manage_instance(call: Call) -> Response:
    call.market.manage_instance(call.user, call.int_param("instance_id"), call.body(ManageInstanceBody))
    return ok({"success": True})


def manage_instances(call: Call) -> Response:
    call.market.manage_instances(call.user, call.body(BulkManageBody))
    return ok({"success": True})


def destroy_instance(call: Call) -> Response:
    call.market.destroy_instance(call.user, call.int_param("instance_id"))
    return ok({"success": True})


def destroy_instances(call: Call) -> Response:
    result = call.market.destroy_instances(call.user, call.body(BulkDestroyBody).instance_ids)
    return ok({"success": True, "destroyed": result.destroyed, "not_found": result.not_found})


def charges(call: Call) -> Response:
    page = call.market.charges(call.user, parse_charges(call.request.query))
    return ok({
        "success": True,
        "count": len(page.lines),
        "total": page.total,
        "next_token": page.next_token,
        "results": [charge_row(line) for line in page.lines],
    })


def machines(call: Call) -> Response:
    return ok({"machines": call.market.machines(call.user)})


def unlist_machine(call: Call) -> Response:
    call.market.unlist_machine(call.user, call.int_param("id"))
    return ok({"success": True})


# ---------------------------------------------------------------------------- teams, roles and members


def create_team(call: Call) -> Response:
    team = call.market.create_team(call.who, call.body(CreateTeamBody))
    # `team_id` besides Vast's documented two fields: the official CLI's own tests mock this answer with it
    # (vast-cli tests/cli/test_teams_commands.py), and without it a client cannot tell which team it made.
    return ok({"success": True, "msg": "Team Successfully Created!", "team_id": team.id}, audit={"team_id": team.id})


def destroy_team(call: Call) -> Response:
    return ok({"success": True, "msg": "Team Successfully Deleted!", "pkey_id": call.market.destroy_team(call.who)})


def create_role(call: Call) -> Response:
    role = call.market.create_role(call.who, call.body(CreateRoleBody))
    return ok({"msg": "success"}, audit={"role_id": role.id})


def show_role(call: Call) -> Response:
    role = call.market.role(call.who, call.params["name"])
    return ok({"id": role.id, "name": role.name, "permissions": role.permissions.to_wire()})


def list_roles(call: Call) -> Response:
    return ok([role_row(r) for r in call.market.roles(call.who)])


def update_role(call: Call) -> Response:
    role = call.market.update_role(call.who, call.params["id"], call.body(UpdateRoleBody))
    return ok({"success": True, "msg": f"Successfully Updated Team Role For {role.name}"})


def remove_role(call: Call) -> Response:
    role = call.market.remove_role(call.who, call.params["name"], call.body(RemoveRoleBody).role_id)
    return ok({"status": "success", "message": f"Role {role.name} removed from team"}, audit={"role_id": role.id})


def invite_member(call: Call) -> Response:
    body = call.body(InviteBody)
    query = call.request.query
    invitation = call.market.invite(call.who, query.get("email") or body.email, query.get("role") or body.role)
    return ok({"success": True, "msg": f"New invitation sent to {invitation.email}"},
              audit={"invitation_id": invitation.id})


def list_members(call: Call) -> Response:
    return ok([member_row(account, role) for account, role in call.market.members(call.who)])


def remove_member(call: Call) -> Response:
    call.market.remove_member(call.who, call.int_param("id"))
    return ok({"status": "success", "message": "User removed from the team."})


# --------------------------------------------------------------------------------- keys, credit, audit


def create_api_key(call: Call) -> Response:
    key, secret = call.market.create_api_key(call.who, call.body(CreateApiKeyBody))
    # The one response that carries a key: it is never stored, logged or shown again.
    return ok({"success": True, "id": key.id, "key": secret, "permissions": permissions_json(key.permissions)},
              audit={"key_id": key.id})


def list_api_keys(call: Call) -> Response:
    who = call.who
    return ok({"apikeys": [api_key_row(k, who.account) for k in call.market.api_keys(who)]})


def show_api_key(call: Call) -> Response:
    who = call.who
    return ok(api_key_row(call.market.api_key(who, call.int_param("id")), who.account))


def delete_api_key(call: Call) -> Response:
    call.market.delete_api_key(call.who, call.int_param("id"))
    return ok("Successfully Deleted API Key")


def transfer_credit(call: Call) -> Response:
    call.market.transfer_credit(call.who, call.body(TransferCreditBody))
    return ok({"success": True})


def audit_logs(call: Call) -> Response:
    return ok([audit_row(e) for e in call.market.audit_logs(call.who)])


# ------------------------------------------------------------------------------------ the control plane


def _account_json(view: UserView) -> dict[str, Any]:
    a = view.account
    return {"id": a.id, "username": a.username, "email": a.email, "kind": a.kind, "owner_id": a.owner_id,
            "balance": billing.wire(billing.round6(view.balance))}


def _clock_json(clock: ClockReading) -> dict[str, Any]:
    return {"now": clock.now, "iso": datetime.fromtimestamp(clock.now, UTC).isoformat(), "frozen": clock.frozen}


def health(call: Call) -> Response:
    h = call.market.health()
    return ok({"ok": True, "offers": h.offers, "accounts": h.accounts, "seed": h.seed})


def reset(call: Call) -> Response:
    body = call.body(ResetBody)
    h = call.market.reset(seed=body.seed, offers=body.offers)
    return ok({"success": True, "seed": h.seed, "offers": h.offers})


def reseed(call: Call) -> Response:
    body = call.body(SeedBody)
    result = call.market.reseed_market(seed=body.seed, offers=body.offers)
    return ok({"success": True, "seed": result.seed, "offers": result.offers, "new_offers": result.new_offers})


def add_offer(call: Call) -> Response:
    quote, now = call.market.add_listed_offer(call.body(OfferBody))
    return ok({"success": True, "offer": offer_row(quote, now)})


def create_account(call: Call) -> Response:
    return ok({"success": True, "account": _account_json(call.market.create_account(call.body(AccountBody)))})


def list_accounts(call: Call) -> Response:
    return ok({"accounts": [_account_json(v) for v in call.market.accounts()]})


def get_account(call: Call) -> Response:
    return ok({"account": _account_json(call.market.account(call.int_param("account_id")))})


def seed_team(call: Call) -> Response:
    team = call.market.seed_team(call.body(TeamBody))
    return ok({"success": True, "account": _account_json(call.market.account(team.id))})


def seed_team_key(call: Call) -> Response:
    key = call.market.seed_team_key(call.int_param("team_id"), call.body(TeamKeyBody))
    return ok({"success": True, "key": api_key_row(key, call.market.account(key.account_id).account)})


def accept_invitation(call: Call) -> Response:
    member = call.market.accept_invitation(call.int_param("team_id"), call.body(AcceptInvitationBody).email)
    return ok({"success": True, "member": member.model_dump(mode="json")})


def list_invitations(call: Call) -> Response:
    return ok({"invitations": [i.model_dump(mode="json") for i in call.market.invitations()]})


def set_balance(call: Call) -> Response:
    view = call.market.set_balance(call.int_param("account_id"), call.body(BalanceBody))
    return ok({"success": True, "account": _account_json(view)})


def get_clock(call: Call) -> Response:
    return ok(_clock_json(call.market.clock_reading()))


def set_clock(call: Call) -> Response:
    call.market.update_clock(call.body(ClockBody))
    return ok(_clock_json(call.market.clock_reading()))


def get_config(call: Call) -> Response:
    return ok(call.market.config.model_dump())


def set_config(call: Call) -> Response:
    return ok(call.market.configure(call.body(ConfigBody)).model_dump())


def list_faults(call: Call) -> Response:
    return ok({"faults": [r.model_dump() for r in call.market.fault_rules()]})


def add_fault(call: Call) -> Response:
    return ok({"success": True, "fault": call.market.add_fault(call.body(FaultBody)).model_dump()})


def clear_faults(call: Call) -> Response:
    call.market.clear_faults()
    return ok({"success": True})


def force_state(call: Call) -> Response:
    inst, now = call.market.force_state_at(call.int_param("instance_id"), call.body(ForceStateBody))
    return ok({"success": True, "instance": instance_row(inst, now)})


def _demand_json(demand: Demand, now: float) -> dict[str, Any]:
    return {**demand.model_dump(mode="json"), "active": demand.active(now)}


def list_demand(call: Call) -> Response:
    now = call.market.clock.now()
    return ok({"demand": [_demand_json(d, now) for d in call.market.demands()]})


def add_demand(call: Call) -> Response:
    demand = call.market.add_demand(call.body(DemandBody))
    return ok({"success": True, "demand": _demand_json(demand, call.market.clock.now())})


def end_demand(call: Call) -> Response:
    demand = call.market.end_demand(call.int_param("demand_id"))
    return ok({"success": True, "demand": demand.model_dump(mode="json")})


def set_gpu_util(call: Call) -> Response:
    inst, now = call.market.set_gpu_util(call.int_param("instance_id"), call.body(GpuUtilBody))
    return ok({"success": True, "instance": instance_row(inst, now)})


def list_races(call: Call) -> Response:
    return ok({"races": [r.model_dump() for r in call.market.races()]})


def add_race(call: Call) -> Response:
    return ok({"success": True, "races": [r.model_dump() for r in call.market.add_race(call.body(RaceBody))]})


def clear_races(call: Call) -> Response:
    call.market.clear_races()
    return ok({"success": True})


def list_requests(call: Call) -> Response:
    records, counts = call.market.request_records(call.request.query.get("operation") or None)
    return ok({"total": len(records), "counts": counts, "requests": [r.model_dump() for r in records]})


def clear_requests(call: Call) -> Response:
    call.market.clear_requests()
    return ok({"success": True})


def dump_state(call: Call) -> Response:
    """The whole market as JSON, for assertions and debugging; account key digests are left out."""
    dump = call.market.state_dump()
    data = dump.state.model_dump(mode="json", exclude={"accounts": {"__all__": {"key_sha256"}},
                                                       "api_keys": {"__all__": {"key_sha256"}}})
    for account in data["accounts"].values():
        account["balance"] = billing.wire(billing.round6(dump.balances[account["id"]]))
    data["clock"] = _clock_json(dump.clock)
    return ok(data)
