"""`VastClient`: the Vast.ai operations vastguard needs, typed, retried, and safe to retry.

Paths, methods and bodies are those the official `vastai` CLI 1.9.1 sends (see /work/shared/vastai-api.md),
so that anything which works with the official CLI (the real service, the local emulator) works here.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from fleet.permissions import InvalidPermissions, KeyParams, PermissionSet
from fleet.stack_config import SET_KEY_COMMAND
from vastclient._retry import Deadline, Failure, RetryPolicy
from vastclient._transport import Transport
from vastclient.bodies import CreateApiKeyBody, CreateTeamBody, RoleBody, TransferCreditBody, UpdateRoleBody
from vastclient.errors import (
    CreateOutcomeUnknownError,
    InvalidRequestError,
    MissingApiKeyError,
    NoSuchInstanceError,
    OfferUnavailableError,
    UnexpectedResponseError,
    VastError,
)
from vastclient.models import (
    ApiKeyInfo,
    AuditEntry,
    Charge,
    CreatedApiKey,
    Instance,
    Member,
    Offer,
    Role,
    User,
    keep_one,
)
from vastclient.query import OfferQuery

__all__ = ["API_KEY_ENV", "DEFAULT_BASE_URL", "MISSING_KEY_HELP", "URL_ENV", "ChargeType", "VastClient"]

log = logging.getLogger("vastclient")

DEFAULT_BASE_URL = "https://console.vast.ai"
_USER_AGENT = "vastguard-vastclient/0.1"
_INSTANCE_PAGE = 25  # the v1 list endpoint's maximum page size
_CHARGE_PAGE = 100  # the charges endpoint's maximum page size
_MAX_PAGES = 10_000

ChargeType = Literal["instance", "volume", "serverless"]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

API_KEY_ENV = "VAST_API_KEY"
"""Where the key is read from when not passed (the official CLI's name)."""
URL_ENV = "VAST_URL"
"""Where the base URL is read from when not passed (the official CLI's name)."""

MISSING_KEY_HELP = (
    f"no Vast.ai API key: pass api_key=... or set the {API_KEY_ENV} environment variable; for a team stack, "
    f"`{SET_KEY_COMMAND}` (it prompts; nothing lands in shell history)"
)


class VastClient:
    """A synchronous Vast.ai API client. Use it as a context manager, or call `close()`.

    Every public operation runs inside its own `deadline` (seconds, retries and waits included); each HTTP
    request inside it is limited to `timeout` seconds (or what is left of the deadline). Requests that fail
    with 429 / 502 / 503 / 504 or a connection error or timeout are retried up to `max_attempts` times with
    exponential backoff and jitter, never sooner than the server's `Retry-After` / `X-RateLimit-Reset`.
    `clock` (monotonic), `sleep`, `rng` (uniform in [0, 1)) and `wall_clock` (epoch seconds, for
    `X-RateLimit-Reset`) are injectable so that tests run retries without waiting. `pace=True` spaces requests
    by Vast's published per-endpoint rate limits from the start; otherwise a class is paced once a 429 names its
    threshold (see `vastclient._pacing.Pacer`).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        deadline: float = 120.0,
        max_attempts: int = 5,
        initial_backoff: float = 0.5,
        max_backoff: float = 20.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
        pace: bool = False,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
        key = key.strip()
        if not key:
            raise MissingApiKeyError(MISSING_KEY_HELP)
        if timeout <= 0 or deadline <= 0:
            raise InvalidRequestError(f"timeout ({timeout}) and deadline ({deadline}) must be positive")
        if timeout > deadline:
            raise InvalidRequestError(
                f"timeout ({timeout} s) must not exceed deadline ({deadline} s): a create whose answer is "
                "lost needs time left to check whether it happened"
            )
        self._base_url = (base_url or os.environ.get(URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self._deadline_s = float(deadline)
        try:
            retry = RetryPolicy(max_attempts=max_attempts, initial_backoff=initial_backoff, max_backoff=max_backoff)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        self._t = Transport(
            base_url=self._base_url,
            api_key=key,
            timeout=float(timeout),
            retry=retry,
            user_agent=_USER_AGENT,
            transport=transport,
            clock=clock,
            sleep=sleep,
            rng=rng,
            wall_clock=wall_clock,
            pace=pace,
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def last_server_time(self) -> float | None:
        """Vast's clock (epoch seconds) when it sent the most recent response this thread received, whatever
        its status: what Vast bills by, read from the emulator's precise `X-Emulator-Time` header when present,
        else from HTTP `Date` (whole seconds). None before the first response. Read it right after the call
        whose moment matters (a rent, a stop): the next call replaces it."""
        return self._t.server_time

    def __repr__(self) -> str:
        return f"VastClient(base_url={self._base_url!r}, api_key='***')"

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> VastClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _deadline(self) -> Deadline:
        return self._t.deadline(self._deadline_s)

    # -- marketplace -----------------------------------------------------------------------------------

    def gpu_names(self) -> list[str]:
        """The GPU names the marketplace knows, in its spelling (for `fleet.gpus.resolve`)."""
        data = self._t.call("GET", "/api/v0/gpu_names/unique/", deadline=self._deadline())
        names = _field(data, "gpu_names", "GET /api/v0/gpu_names/unique/")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UnexpectedResponseError("gpu_names is not a list of strings", path="/api/v0/gpu_names/unique/")
        return sorted(set(names))

    def search_offers(self, query: OfferQuery) -> list[Offer]:
        """Offers matching `query`, in Vast's order. Rows Vast returns that do not parse or do not satisfy
        the query (Vast drops filters it dislikes without saying so) are left out, with a DEBUG log."""
        path = "/api/v0/bundles/"
        data = self._t.call("POST", path, body=query.to_filter(), deadline=self._deadline())
        rows = _field(data, "offers", f"POST {path}")
        if not isinstance(rows, list):
            raise UnexpectedResponseError("offers is not a list", method="POST", path=path)
        offers: list[Offer] = []
        malformed = mismatched = 0
        for row in rows:
            try:
                offer = Offer.model_validate(row)
            except ValidationError:
                malformed += 1
                continue
            if query.matches(offer):
                offers.append(offer)
            else:
                mismatched += 1
        if malformed or mismatched:
            log.debug("search: dropped %d malformed and %d non-matching offers of %d", malformed, mismatched, len(rows))
        return offers

    # -- instances -------------------------------------------------------------------------------------

    def create_instance(
        self,
        offer_id: int,
        *,
        image: str,
        disk_gb: float,
        label: str,
        env: Mapping[str, str] | None = None,
        onstart: str | None = None,
        price: float | None = None,
        runtype: str = "ssh",
        args: Sequence[str] | None = None,
        image_login: str | None = None,
        cancel_unavail: bool = True,
        force: bool = False,
        extra: str | None = None,
        python_utf8: bool = False,
        lang_utf8: bool = False,
        jupyter_lab: bool = False,
        jupyter_dir: str | None = None,
        template_hash_id: str | None = None,
        user: str | None = None,
    ) -> int:
        """Rent offer `offer_id`; returns the new instance id. `price` is the bid ($/hour) for an
        interruptible rent, None for on-demand.

        Why `label` is required: a rent whose answer is lost (timeout, dropped connection, a gateway 5xx)
        may or may not have happened, and blindly retrying it can leave two paid instances running. So
        before retrying, this lists instances carrying `label`; if one exists the rent happened and its id
        is returned, otherwise the rent is retried. That only works if the label identifies this one rent
        (vastguard's ownership label does); an older instance with the same label would be taken for it.
        If the check itself fails, `CreateOutcomeUnknownError` says the instance may exist; any other error
        raised after a check (retries or deadline used up) means the last check found no such instance.

        Retries target the same offer, which is single-use: if an earlier attempt did rent it, the retry
        gets `no_such_ask`, and the label is checked once more before `OfferUnavailableError` is raised
        (this covers a listing that lags behind the rent).

        `cancel_unavail` defaults to True (the CLI's default is False): without it, a rent Vast cannot
        schedule may become a stopped instance that nobody asked for but that bills storage.
        """
        _check_create(image=image, disk_gb=disk_gb, label=label, price=price)
        body: dict[str, Any] = {
            "client_id": "me",
            "image": image,
            "env": dict(env or {}),
            "price": price,
            "disk": float(disk_gb),
            "label": label,
            "extra": extra,
            "onstart": onstart,
            "image_login": image_login,
            "python_utf8": python_utf8,
            "lang_utf8": lang_utf8,
            "use_jupyter_lab": jupyter_lab,
            "jupyter_dir": jupyter_dir,
            "force": force,
            "cancel_unavail": cancel_unavail,
            "template_hash_id": template_hash_id,
            "user": user,
        }
        if runtype:
            body["runtype"] = runtype
        if args is not None:
            body["args"] = list(args)
        path = f"/api/v0/asks/{int(offer_id)}/"
        deadline = self._deadline()
        outcome_unknown = False
        attempt = 0
        while True:
            attempt += 1
            result = self._t.send("PUT", path, body=body, deadline=deadline, attempt=attempt)
            if not isinstance(result, Failure):
                contract = result.get("new_contract") if isinstance(result, dict) else None
                instance_id = _as_int(contract)
                if instance_id is not None:
                    log.debug("rented offer %d as instance %d (label %r)", offer_id, instance_id, label)
                    return instance_id
                result = Failure(
                    error=UnexpectedResponseError(
                        "rent answered without a new_contract id", method="PUT", path=path, attempts=attempt
                    ),
                    retryable=False,
                    acted=True,
                )
            failure = result
            lost_own_offer = outcome_unknown and isinstance(failure.error, OfferUnavailableError)
            if failure.acted or lost_own_offer:
                outcome_unknown = True
                log.warning(
                    "rent of offer %d may have happened (%s); checking for an instance labelled %r",
                    offer_id,
                    failure.error,
                    label,
                )
                found = self._find_rented(label=label, offer_id=offer_id, failure=failure, deadline=deadline)
                if found is not None:
                    return found
            delay = self._t.delay_before_retry(failure, attempt, deadline)
            if delay is None:
                raise failure.error
            self._t.wait(delay, failure)

    def _find_rented(self, *, label: str, offer_id: int, failure: Failure, deadline: Deadline) -> int | None:
        try:
            found = self._list_instances(labels=[label], statuses=None, deadline=deadline)
        except VastError as check:
            raise CreateOutcomeUnknownError(
                f"rent of offer {offer_id} may have happened ({failure.error}), and the check for an "
                f"instance labelled {label!r} failed ({check}); look for it before renting again",
                label=label,
                offer_id=offer_id,
                method=failure.error.method,
                path=failure.error.path,
                attempts=failure.error.attempts,
            ) from None
        if not found:
            log.info("no instance labelled %r: the rent of offer %d did not happen", label, offer_id)
            return None
        keep, extras = keep_one(found)
        for extra in extras:
            # One rent, one instance: a second one under the same label (the rent went through twice, e.g. a
            # gateway that forwarded a retry) bills for nothing. Release it, and say so.
            log.warning("instance %d also carries label %r (one rent, one instance): releasing it, keeping %d",
                        extra.id, label, keep.id)
            self._destroy(extra.id, deadline=deadline)
        log.info("the rent of offer %d happened after all: instance %d (label %r)", offer_id, keep.id, label)
        return keep.id

    def list_instances(
        self, *, labels: Iterable[str] | None = None, statuses: Iterable[str] | None = None,
        ids: Iterable[int] | None = None,
    ) -> list[Instance]:
        """The account's instances, optionally only those with one of `labels` / `actual_status` in
        `statuses` / `id` in `ids`, through the paginated v1 listing (25 a page, following `next_token`).
        The filters are re-applied to the rows, since Vast may ignore a filter rather than reject it."""
        return self._list_instances(
            labels=None if labels is None else list(labels),
            statuses=None if statuses is None else list(statuses),
            ids=None if ids is None else sorted(set(ids)),
            deadline=self._deadline(),
        )

    def _list_instances(
        self, *, labels: list[str] | None, statuses: list[str] | None, deadline: Deadline,
        ids: list[int] | None = None,
    ) -> list[Instance]:
        path = "/api/v1/instances/"
        filters: dict[str, Any] = {}
        if ids is not None:
            filters["id"] = {"in": ids}
        if statuses is not None:
            filters["actual_status"] = {"in": statuses}
        if labels is not None:
            filters["label"] = {"in": labels}
        params: dict[str, Any] = {
            "select_filters": filters,
            "order_by": [{"col": "id", "dir": "asc"}],
            "limit": _INSTANCE_PAGE,
        }
        rows: list[Any] = []
        for page in _pages(self._t, "GET", path, params, deadline=deadline):
            batch = page.get("instances")
            if batch is None:
                continue
            if not isinstance(batch, list):
                raise UnexpectedResponseError("instances is not a list", method="GET", path=path)
            rows.extend(batch)
        instances = [_parse(Instance, row, f"GET {path}") for row in rows]
        return [
            i
            for i in instances
            if (labels is None or i.label in labels) and (statuses is None or i.actual_status in statuses)
            and (ids is None or i.id in ids)
        ]

    def get_instance(self, instance_id: int) -> Instance | None:
        """One instance, or None when Vast says it does not know it (destroyed, or never yours): its answer is
        `{"instances": null}`, or a `no_such_instance` error. Any other 404 raises `NotFoundError`: it is not
        Vast saying the instance is gone."""
        path = f"/api/v0/instances/{int(instance_id)}/"
        try:
            data = self._t.call("GET", path, query={"owner": "me"}, deadline=self._deadline())
        except NoSuchInstanceError:
            return None
        row = _field(data, "instances", f"GET {path}")
        if row is None:
            return None
        return _parse(Instance, row, f"GET {path}")

    def start(self, instance_id: int) -> None:
        self._manage(instance_id, {"state": "running"})

    def stop(self, instance_id: int) -> None:
        """Stop: the GPU is released and stops billing; the disk is kept and still bills storage."""
        self._manage(instance_id, {"state": "stopped"})

    def change_bid(self, instance_id: int, price: float) -> None:
        """Change an interruptible instance's bid ($/h for the whole machine) in place: Vast runs the highest
        bid on a machine, pauses the others and resumes them when they win again, and bills the bid while it
        runs. Repeatable (setting the same bid twice is the same bid)."""
        if not 0.001 <= price <= 128:
            raise InvalidRequestError(f"bid is {price} $/h; Vast accepts 0.001 to 32 per GPU")
        self._t.call("PUT", f"/api/v0/instances/bid_price/{int(instance_id)}/",
                     body={"client_id": "me", "price": price}, deadline=self._deadline())

    def set_label(self, instance_id: int, label: str) -> None:
        _check_label(label)
        self._manage(instance_id, {"label": label})

    def _manage(self, instance_id: int, body: dict[str, Any]) -> None:
        self._t.call("PUT", f"/api/v0/instances/{int(instance_id)}/", body=body, deadline=self._deadline())

    def destroy(self, instance_id: int) -> None:
        """Destroy an instance (irreversible; its disk is deleted).

        Idempotent: destroying an instance that Vast says is already gone (`no_such_instance`) returns
        normally. The wanted end state holds either way, a retried DELETE whose first answer was lost would
        otherwise fail on its own success, and Pulumi's delete must tolerate resources that vanished outside
        it. Any other 404 (a proxy's, a gateway's) raises, since the instance may still bill; so do other
        errors (auth, rate limits after retries)."""
        self._destroy(instance_id, deadline=self._deadline())

    def _destroy(self, instance_id: int, *, deadline: Deadline) -> None:
        path = f"/api/v0/instances/{int(instance_id)}/"
        try:
            self._t.call("DELETE", path, body={}, deadline=deadline)
        except NoSuchInstanceError:
            log.debug("destroy: instance %d is already gone", instance_id)

    # -- account -----------------------------------------------------------------------------------------

    def current_user(self) -> User:
        data = self._t.call("GET", "/api/v0/users/current", deadline=self._deadline())
        return _parse(User, data, "GET /api/v0/users/current")

    def charges(self, start_day: date, end_day: date, *, types: Sequence[ChargeType] = ("instance",)) -> list[Charge]:
        """What Vast charged for `start_day`..`end_day` (both included, UTC days), oldest first, all pages.

        Sent as the official CLI's `show invoices-v1 --charges` does (`day` bounds as UTC-midnight epoch
        seconds, which Vast requires), with `format=tree` so each charge comes with its gpu/disk/bandwidth
        items for reconciliation."""
        if end_day < start_day:
            raise InvalidRequestError(f"end_day {end_day} is before start_day {start_day}")
        if not types:
            raise InvalidRequestError("types must name at least one charge type")
        path = "/api/v0/charges/"
        params: dict[str, Any] = {
            "select_filters": {
                "day": {"gte": _utc_midnight(start_day), "lte": _utc_midnight(end_day)},
                "type": {"in": list(types)},
            },
            "latest_first": False,
            "limit": _CHARGE_PAGE,
            "format": "tree",
        }
        rows: list[Any] = []
        for page in _pages(self._t, "GET", path, params, deadline=self._deadline()):
            batch = page.get("results")
            if batch is None:
                continue
            if not isinstance(batch, list):
                raise UnexpectedResponseError("results is not a list", method="GET", path=path)
            rows.extend(batch)
        return [_parse(Charge, row, f"GET {path}") for row in rows]


    # -- teams, roles, members ---------------------------------------------------------------------------
    #
    # A team is an account of its own. The key that creates it keeps acting on its personal account; every
    # call below about roles and members, and every key created for the team, needs a client whose key was made
    # in the team's context (see vastclient/README.md, "Access control").

    def create_team(self, name: str, *, transfer_credit: Decimal | int | str = 0) -> int:
        """Create a team (a separate account) owned by this key's user, moving `transfer_credit` dollars of
        personal credit into it; returns the team's account id. Not repeated after an unclear failure: a
        second team would be made."""
        body = _body(CreateTeamBody, team_name=name, transfer_credit=Decimal(str(transfer_credit)))
        data = self._t.call("POST", "/api/v0/team/", body=body.wire(), deadline=self._deadline(), repeatable=False,
                            unsure=f"the team {name!r} may have been created: look for it before creating it again")
        team_id = _as_int(data.get("team_id")) if isinstance(data, dict) else None
        if team_id is None:
            raise UnexpectedResponseError("team created, but the answer names no team_id", method="POST",
                                          path="/api/v0/team/")
        return team_id

    def destroy_team(self) -> int:
        """Delete the team this key acts in (its owner's key only); what is left of its balance goes back to the
        owner. Returns the owner's primary key id (Vast's `pkey_id`)."""
        data = self._t.call("DELETE", "/api/v0/team/", body={}, deadline=self._deadline(), repeatable=False)
        return _as_int(data.get("pkey_id") if isinstance(data, dict) else None) or 0

    def create_role(self, name: str, permissions: PermissionSet | Mapping[str, Any]) -> Role:
        """A custom role in this key's team; returns it as Vast stored it (looked up by name afterwards, since
        Vast's answer to the creation is only `{"msg": "success"}`)."""
        body = _body(RoleBody, name=name, permissions=_permission_set(permissions))
        self._t.call("POST", "/api/v0/team/roles/", body=body.wire(), deadline=self._deadline(), repeatable=False)
        return self.get_role(name)

    def get_role(self, name: str) -> Role:
        path = f"/api/v0/team/roles/{quote(name, safe='')}/"
        return _parse(Role, self._t.call("GET", path, deadline=self._deadline()), f"GET {path}")

    def list_roles(self) -> list[Role]:
        """Every role of this key's team but the owner's (Vast's `roles-full`)."""
        path = "/api/v0/team/roles-full/"
        return [_parse(Role, row, f"GET {path}") for row in _rows(self._t.call("GET", path, deadline=self._deadline()),
                                                                  None, f"GET {path}")]

    def update_role(self, role_id: int, *, name: str | None = None,
                    permissions: PermissionSet | Mapping[str, Any] | None = None) -> None:
        wanted = None if permissions is None else _permission_set(permissions)
        body = _body(UpdateRoleBody, name=name, permissions=wanted)
        self._t.call("PUT", f"/api/v0/team/roles/{int(role_id)}/", body=body.wire(), deadline=self._deadline())

    def remove_role(self, name: str) -> None:
        self._t.call("DELETE", f"/api/v0/team/roles/{quote(name, safe='')}/", body={}, deadline=self._deadline(),
                     repeatable=False)

    def invite_member(self, email: str, role: str) -> None:
        """E-mail an invitation to join this key's team with `role` (it expires after 4 hours)."""
        if not email.strip() or not role.strip():
            raise InvalidRequestError("invite_member needs an e-mail address and a role name")
        self._t.call("POST", "/api/v0/team/invite/", query={"email": email, "role": role}, body={},
                     deadline=self._deadline(), repeatable=False)

    def list_members(self) -> list[Member]:
        path = "/api/v0/team/members/"
        data = self._t.call("GET", path, deadline=self._deadline())
        return [_parse(Member, row, f"GET {path}") for row in _rows(data, None, f"GET {path}")]

    def remove_member(self, user_id: int) -> None:
        """Remove a member from this key's team; Vast revokes every key they hold in it."""
        self._t.call("DELETE", f"/api/v0/team/members/{int(user_id)}/", body={}, deadline=self._deadline(),
                     repeatable=False)

    # -- API keys, credit, audit log -----------------------------------------------------------------------

    def create_api_key(self, name: str, *, permissions: PermissionSet | Mapping[str, Any] | None = None,
                       key_params: KeyParams | Mapping[str, Any] | None = None) -> CreatedApiKey:
        """A new key acting on the account this key acts on (a team's, for a team key), with at most the rights
        this key holds; `permissions` None gives it exactly those. The key is in the result only, as a
        `SecretStr`, and this client redacts it from everything it reports afterwards. Not repeated after an
        unclear failure (a key nobody holds would be left behind): list the keys and delete strays."""
        params = None if key_params is None else (
            key_params if isinstance(key_params, KeyParams) else _checked(KeyParams.parse, key_params))
        body = _body(CreateApiKeyBody, name=name,
                     permissions=None if permissions is None else _permission_set(permissions), key_params=params)
        path = "/api/v0/auth/apikeys/"
        data = self._t.call("POST", path, body=body.wire(), deadline=self._deadline(), repeatable=False,
                            unsure=f"a key named {name!r} may have been created: list_api_keys() and delete it "
                                   "before creating another")
        secret = data.get("key") if isinstance(data, dict) else None
        if not isinstance(secret, str) or not secret:
            raise UnexpectedResponseError("key created, but the answer holds no key", method="POST", path=path)
        self._t.add_secret(secret)
        return _parse(CreatedApiKey, data, f"POST {path}")

    def list_api_keys(self) -> list[ApiKeyInfo]:
        """This key's user's keys in the account this key acts on (never the keys themselves)."""
        path = "/api/v0/auth/apikeys/"
        data = self._t.call("GET", path, deadline=self._deadline())
        return [_parse(ApiKeyInfo, row, f"GET {path}") for row in _rows(data, "apikeys", f"GET {path}")]

    def get_api_key(self, key_id: int) -> ApiKeyInfo:
        path = f"/api/v0/auth/apikeys/{int(key_id)}/"
        return _parse(ApiKeyInfo, self._t.call("GET", path, deadline=self._deadline()), f"GET {path}")

    def delete_api_key(self, key_id: int) -> None:
        """Revoke a key (not the account's primary one): it is refused from the next request on."""
        self._t.call("DELETE", f"/api/v0/auth/apikeys/{int(key_id)}/", body={}, deadline=self._deadline(),
                     repeatable=False)

    def transfer_credit(self, recipient: str | int, amount: Decimal | int | str) -> None:
        """Move `amount` dollars (whole cents) from the account this key acts on to `recipient` (an account id
        or e-mail); a team may send credit only to its owner. Never repeated after an unclear failure: read
        both balances before trying again."""
        body = _body(TransferCreditBody, recipient=str(recipient), amount=Decimal(str(amount)))
        self._t.call("PUT", "/api/v0/commands/transfer_credit/", body=body.wire(), deadline=self._deadline(),
                     repeatable=False, unsure=f"{amount} may have been sent to {recipient}: read both balances "
                                              "(current_user) before sending again")

    def audit_logs(self) -> list[AuditEntry]:
        """What the keys of the account this key acts on did: creates, destroys, key and role changes,
        transfers."""
        path = "/api/v0/audit_logs/"
        data = self._t.call("GET", path, deadline=self._deadline())
        return [_parse(AuditEntry, row, f"GET {path}") for row in _rows(data, None, f"GET {path}")]


# -- helpers ---------------------------------------------------------------------------------------------


def _pages(
    transport: Transport,
    method: str,
    path: str,
    params: dict[str, Any],
    *,
    deadline: Deadline,
) -> Iterable[dict[str, Any]]:
    """Keyset pagination: repeat with `after_token=<next_token>` until no token comes back."""
    params = dict(params)
    seen: set[str] = set()
    for _ in range(_MAX_PAGES):
        page = transport.call(method, path, query=params, deadline=deadline)
        if not isinstance(page, dict):
            raise UnexpectedResponseError("page is not a JSON object", method=method, path=path)
        yield page
        token = page.get("next_token")
        if not token:
            return
        token = str(token)
        if token in seen:
            raise UnexpectedResponseError(f"pagination repeats next_token {token!r}", method=method, path=path)
        seen.add(token)
        params["after_token"] = token
    raise UnexpectedResponseError(f"more than {_MAX_PAGES} pages", method=method, path=path)


def _parse(model: type[M], row: Any, where: str) -> M:
    try:
        return model.model_validate(row)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(row)'}: {e['msg']}" for e in exc.errors()[:5])
        method, _, path = where.partition(" ")
        raise UnexpectedResponseError(
            f"{model.__name__} does not parse: {problems}", method=method, path=path
        ) from None


B = TypeVar("B", bound=BaseModel)


def _body(model: type[B], **fields: Any) -> B:
    """A request body, validated before anything is sent: a bad field is an `InvalidRequestError` naming it."""
    try:
        return model.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or model.__name__}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise InvalidRequestError(problems) from None


def _checked(parse: Callable[[Any], T], raw: Any) -> T:
    try:
        return parse(raw)
    except InvalidPermissions as exc:
        raise InvalidRequestError(str(exc)) from None


def _permission_set(permissions: PermissionSet | Mapping[str, Any]) -> PermissionSet:
    return permissions if isinstance(permissions, PermissionSet) else _checked(PermissionSet.parse, dict(permissions))


def _rows(data: Any, key: str | None, where: str) -> list[Any]:
    rows = data if key is None else _field(data, key, where)
    if not isinstance(rows, list):
        method, _, path = where.partition(" ")
        raise UnexpectedResponseError(f"{key or 'the answer'} is not a list", method=method, path=path)
    return rows


def _field(data: Any, key: str, where: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        method, _, path = where.partition(" ")
        raise UnexpectedResponseError(f"response has no {key!r}", method=method, path=path)
    return data[key]


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _utc_midnight(day: date) -> int:
    if isinstance(day, datetime):
        day = day.date()
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _check_label(label: str) -> None:
    if not isinstance(label, str) or not label.strip():
        raise InvalidRequestError("label must be a non-empty string")
    if len(label) > 256:
        raise InvalidRequestError(f"label is {len(label)} characters; Vast allows at most 256")


def _check_create(*, image: str, disk_gb: float, label: str, price: float | None) -> None:
    """Vast's documented limits, checked here so a bad fleet entry fails before anything is rented."""
    _check_label(label)
    if not image or len(image) > 1024:
        raise InvalidRequestError("image must be 1 to 1024 characters")
    if disk_gb < 8:
        raise InvalidRequestError(f"disk_gb is {disk_gb}; Vast requires at least 8")
    if price is not None and not 0.001 <= price <= 128:
        raise InvalidRequestError(f"price (bid) is {price} $/h; Vast accepts 0.001 to 128")
