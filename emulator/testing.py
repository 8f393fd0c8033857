"""Helpers for tests that run against the emulator: account, team and team-key factories and a stdlib HTTP
helper for the control plane and for raw API calls (tests of vastguard's own client should of course use that
client).

Keys made here are random per test and never printed: `EmulatorAccount.api_key` is excluded from repr,
so a failing assertion that shows the account does not show its key.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from emulator.bodies import TeamBody, TeamKeyBody
from emulator.server import EmulatorServer


def new_api_key() -> str:
    return "emu-" + secrets.token_hex(16)


@dataclass(frozen=True)
class EmulatorAccount:
    id: int
    username: str
    api_key: str = field(repr=False)


def make_account(server: EmulatorServer, *, balance: float | int | str | Decimal = 100,
                 username: str | None = None, api_key: str | None = None) -> EmulatorAccount:
    key = api_key or new_api_key()
    account = server.create_account(api_key=key, balance=balance, username=username)
    return EmulatorAccount(id=account.id, username=account.username, api_key=key)


@dataclass(frozen=True)
class EmulatorTeam:
    id: int
    name: str
    owner_id: int


def make_team(server: EmulatorServer, owner: EmulatorAccount, *, name: str | None = None,
              transfer_credit: float | int | str | Decimal = 0) -> EmulatorTeam:
    """A team owned by `owner`, as its `POST /api/v0/team/` would make it."""
    team = server.market.seed_team(TeamBody(owner_id=owner.id, team_name=name or f"team-{secrets.token_hex(4)}",
                                            transfer_credit=Decimal(str(transfer_credit))))
    return EmulatorTeam(id=team.id, name=team.username, owner_id=owner.id)


def make_team_key(server: EmulatorServer, team: EmulatorTeam, *, user_id: int | None = None,
                  permissions: Any = None, key_params: Any = None, name: str = "console") -> str:
    """A key in the team's context for a member (default: the owner), as the console makes one after switching
    into the team (Vast has no API for that first key). Random, like `new_api_key`."""
    key = new_api_key()
    server.market.seed_team_key(team.id, TeamKeyBody(api_key=key, user_id=user_id, name=name,
                                                     permissions=permissions, key_params=key_params))
    return key


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def http(base_url: str, method: str, path: str, *, key: str | None = None, body: Any = None,
         raw_body: bytes | None = None, query: dict[str, Any] | None = None, timeout: float = 10.0) -> HttpResult:
    """One HTTP call, any status returned rather than raised. Query values that are not strings are
    JSON-encoded, as the official client does."""
    url = base_url + path
    if query:
        url += "?" + urllib.parse.urlencode(
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()})
    data = raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http URL: {base_url!r}")
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (scheme checked above)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (local test server)
            return HttpResult(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as err:
        with err:
            return HttpResult(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


class Control:
    """The control plane, for tests: `Control(srv.url).advance(3600)`."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(self, method: str, path: str, body: Any = None, *, query: dict[str, Any] | None = None) -> Any:
        result = http(self.base_url, method, "/_emulator" + path, body=body, query=query)
        if result.status != 200:
            raise RuntimeError(f"control {method} {path} -> {result.status}: {result.text}")
        return result.json()

    def reset(self, **body: Any) -> Any:
        return self.call("POST", "/reset", body)

    def clock(self, **body: Any) -> Any:
        return self.call("POST", "/clock", body)

    def freeze(self, at: float | str | None = None) -> Any:
        return self.clock(freeze=True, **({"set": at} if at is not None else {}))

    def advance(self, seconds: float) -> Any:
        return self.clock(advance=seconds)

    def config(self, **body: Any) -> Any:
        return self.call("POST", "/config", body)

    def fault(self, **body: Any) -> Any:
        return self.call("POST", "/faults", body)

    def requests(self, operation: str | None = None) -> Any:
        return self.call("GET", "/requests", query={"operation": operation} if operation else None)

    def demand(self, **body: Any) -> Any:
        """Someone else's demand for a machine (`offer_id` or `instance_id`; `kind` bid with `price`, or
        on-demand; optional `start`/`end`): the way to outbid an instance at a known virtual time."""
        return self.call("POST", "/demand", body)["demand"]

    def end_demand(self, demand_id: int) -> Any:
        return self.call("DELETE", f"/demand/{demand_id}")["demand"]

    def gpu_util(self, instance_id: int, **body: Any) -> Any:
        """`points=[{"at": ..., "util": ...}, ...]` (a curve over virtual time) or `util=x` (constant from now)."""
        return self.call("POST", f"/instances/{instance_id}/gpu_util", body)["instance"]

    def account(self, account_id: int) -> Any:
        """Any account's record and balance (a team's too)."""
        return self.call("GET", f"/accounts/{account_id}")["account"]

    def accept_invitation(self, team_id: int, email: str) -> Any:
        """What the link in the invitation e-mail does."""
        return self.call("POST", f"/teams/{team_id}/invitations/accept", {"email": email})["member"]
