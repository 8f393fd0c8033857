"""Request bodies, API and control plane, as pydantic models. The HTTP layer validates into these; a
validation failure becomes a Vast-shaped 400 naming the field (never a 500).

Which bodies forbid unknown keys is deliberate. The create body ignores them: the official CLI keeps adding
keys (`volume_info`, `args`, ...) and sends all of them on every call, and Vast takes what it knows. The
manage and bulk bodies forbid them: a key Vast does not act on there (a typo of `state`, say) would
otherwise be a silent no-op that reports success.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, model_validator

from emulator.catalogue import Verification

# ---------------------------------------------------------------------------------------------- API bodies


class CreateInstanceBody(BaseModel):
    """`PUT /api/v0/asks/{offer_id}/`. Limits (image length, disk, price range) are the backend's to judge,
    so that each failure carries the error code Vast uses for it."""

    model_config = ConfigDict(extra="ignore")

    client_id: str | None = "me"
    image: str | None = None
    env: dict[str, Any] | None = None
    price: FiniteFloat | None = None
    disk: FiniteFloat = 10.0  # the official CLI's default when --disk is not given
    label: str | None = None
    extra: str | None = None
    onstart: str | None = None
    image_login: str | None = None
    python_utf8: bool = False
    lang_utf8: bool = False
    use_jupyter_lab: bool = False
    jupyter_dir: str | None = None
    force: bool = False
    cancel_unavail: bool = False
    template_hash_id: str | None = None
    user: str | None = None
    runtype: str | None = None
    args: list[str] | str | None = None


class ManageInstanceBody(BaseModel):
    """`PUT /api/v0/instances/{id}/`: start/stop (`state`) and/or relabel (`label`; null clears it)."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["running", "stopped"] | None = None
    label: str | None = None

    @model_validator(mode="after")
    def _something_to_do(self) -> ManageInstanceBody:
        if not ({"state", "label"} & self.model_fields_set):
            raise ValueError('nothing to change: send {"state": "running"|"stopped"} or {"label": "..."}')
        return self

    @property
    def relabel(self) -> bool:
        return "label" in self.model_fields_set


class ChangeBidBody(BaseModel):
    """`PUT /api/v0/instances/bid_price/{id}/` `{"client_id": "me", "price": P}`; the CLI sends `price` null
    when `--price` is left out (then the winning bid), and `instance_id` too when it schedules the change."""

    model_config = ConfigDict(extra="ignore")

    client_id: str | None = "me"
    price: FiniteFloat | None = None


class BulkManageBody(ManageInstanceBody):
    """`PUT /api/v0/instances/` with `ids`: what `vastai start instances ...` sends."""

    ids: list[int] = Field(min_length=1)


class BulkDestroyBody(BaseModel):
    """`DELETE /api/v0/instances/` `{"instance_ids": [...]}`."""

    model_config = ConfigDict(extra="forbid")

    instance_ids: list[int] = Field(min_length=1)


class CreateTeamBody(BaseModel):
    """`POST /api/v0/team/` (`vastai create team --team-name N --transfer-credit X`)."""

    model_config = ConfigDict(extra="ignore")

    team_name: str | None = None
    transfer_credit: Decimal = Field(default=Decimal(0), allow_inf_nan=False)


class CreateRoleBody(BaseModel):
    """`POST /api/v0/team/roles/`. The permission document is `fleet.permissions`' to judge (so that its errors
    name the field), hence `Any` here."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    permissions: Any = None


class UpdateRoleBody(CreateRoleBody):
    """`PUT /api/v0/team/roles/{id}/`: the CLI sends only what it was given."""


class RemoveRoleBody(BaseModel):
    """`DELETE /api/v0/team/roles/{name}/`: a `role_id` in the body takes precedence over the name."""

    model_config = ConfigDict(extra="ignore")

    role_id: int | None = None


class InviteBody(BaseModel):
    """`POST /api/v0/team/invite/`: the CLI sends `email` and `role` in the query; the API reference shows a body."""

    model_config = ConfigDict(extra="ignore")

    email: str | None = None
    role: str | None = None


class CreateApiKeyBody(BaseModel):
    """`POST /api/v0/auth/apikeys/`. `key_params` arrives as an object (API reference) or as the raw string the
    CLI's `--key_params` was given."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    permissions: Any = None
    key_params: Any = None


class TransferCreditBody(BaseModel):
    """`PUT /api/v0/commands/transfer_credit/` `{"sender": "me", "recipient": <e-mail or id>, "amount": ...}`."""

    model_config = ConfigDict(extra="ignore")

    sender: str | None = "me"
    recipient: str | int
    amount: Decimal = Field(allow_inf_nan=False)


# ------------------------------------------------------------------------------------ control-plane bodies


class _Control(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResetBody(_Control):
    seed: int | None = None
    offers: int | None = Field(default=None, ge=0, le=5000)


class SeedBody(_Control):
    seed: int
    offers: int | None = Field(default=None, ge=0, le=5000)


class OfferBody(_Control):
    """A hand-made offer at exact terms (id optional)."""

    id: int | None = Field(default=None, ge=1)
    gpu_name: str = Field(min_length=1)
    num_gpus: int = Field(default=1, ge=1, le=16)
    dph_base: Decimal | None = Field(default=None, ge=0)
    storage_cost: Decimal = Field(default=Decimal("0.15"), ge=0)
    reliability: FiniteFloat = Field(default=0.99, ge=0, le=1)
    verification: Verification = "verified"
    geolocation: str = "Oregon, US"
    disk_space: FiniteFloat = Field(default=500.0, gt=0, le=1_000_000)
    rentable: bool = True
    external: bool = False


class AccountBody(_Control):
    api_key: str = Field(min_length=1, max_length=512)
    balance: Decimal = Field(default=Decimal(100))
    username: str | None = Field(default=None, min_length=1, max_length=128)
    email: str | None = None


class BalanceBody(_Control):
    """Set the balance outright, or add to it (a top-up)."""

    balance: Decimal | None = None
    add: Decimal | None = None

    @model_validator(mode="after")
    def _one(self) -> BalanceBody:
        if (self.balance is None) == (self.add is None):
            raise ValueError("send exactly one of balance or add")
        return self


class TeamBody(_Control):
    """A team created as `POST /api/v0/team/` would, for the user account `owner_id`."""

    owner_id: int
    team_name: str = Field(min_length=1, max_length=128)
    transfer_credit: Decimal = Field(default=Decimal(0), ge=0, allow_inf_nan=False)


class TeamKeyBody(_Control):
    """A key in a team's context for one of its members (default: the owner), as the console makes one after
    switching into the team: the one step Vast offers no API for."""

    api_key: str = Field(min_length=1, max_length=512)
    user_id: int | None = None
    name: str = Field(default="console", min_length=1, max_length=255)
    permissions: Any = None
    key_params: Any = None


class AcceptInvitationBody(_Control):
    email: str = Field(min_length=3, max_length=320)


TEN_YEARS = 10 * 366 * 86400.0


class ClockBody(_Control):
    """Applied in this order: `set` (epoch seconds or ISO-8601, within 2000-2100), `freeze`, `advance`
    (seconds, 0 to ten years: billing replays every day it skips, so the jump is bounded)."""

    set: FiniteFloat | str | None = None
    freeze: bool | None = None
    advance: FiniteFloat | None = Field(default=None, ge=0, le=TEN_YEARS)


class ConfigBody(_Control):
    provision_delay: FiniteFloat | None = Field(default=None, ge=0, le=7 * 86400)
    rate_limits: bool | None = None
    latency_ms: int | None = Field(default=None, ge=0, le=60_000)
    strict_search: bool | None = None
    default_search_limit: int | None = Field(default=None, ge=1, le=10_000)


Phase = Literal["before", "after"]
ProvisionOutcome = Literal["stuck_loading", "exited"]


class FaultBody(_Control):
    """An injected failure. `operation` is an API operation (`search`, `create`, `show`, `list`, `manage`,
    `destroy`, `charges`, `user`, `gpu_names`), `*` for any of them, or `provision` for what happens to the
    next instances created (`outcome`). `status` 0 drops the connection without a response. `phase`
    `after` performs the operation and then fails the response: the create-succeeded-but-the-client-saw-
    a-502 case that leaves a paid instance behind."""

    operation: str = Field(min_length=1)
    status: int = Field(default=500, ge=0, le=599)
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    probability: FiniteFloat = Field(default=1.0, ge=0, le=1)
    latency_ms: int = Field(default=0, ge=0, le=120_000)
    count: int | None = Field(default=None, ge=1)
    phase: Phase = "before"
    outcome: ProvisionOutcome | None = None
    status_msg: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> FaultBody:
        for name, value in self.headers.items():
            if not (name.isascii() and value.isascii() and name.isprintable() and value.isprintable() and name):
                raise ValueError("headers must be printable ASCII names and values (no line breaks)")
        if self.operation == "provision" and self.outcome is None:
            raise ValueError("a provision fault needs an outcome: stuck_loading or exited")
        if self.operation != "provision" and self.outcome is not None:
            raise ValueError("outcome only applies to operation 'provision'")
        if 0 < self.status < 100:
            raise ValueError("status is an HTTP status (100-599), or 0 to drop the connection")
        return self


ForcedStatus = Literal["created", "loading", "running", "stopped", "exited", "offline", "unknown", "frozen",
                       "rebooting"]


class ForceStateBody(_Control):
    """Put an instance in a state now. `stuck` with `loading` keeps it loading forever."""

    actual_status: ForcedStatus
    stuck: bool = False
    status_msg: str | None = None


class DemandBody(_Control):
    """Someone else's demand for a machine (`offer_id`, or the machine of `instance_id`): `on-demand` outranks
    every bid; `bid` competes at `price` $/h. From `start` (default now) until `end` (default: until
    `DELETE /_emulator/demand/{id}`), epoch seconds or ISO-8601 on the virtual clock."""

    offer_id: int | None = None
    instance_id: int | None = None
    kind: Literal["on-demand", "bid"] = "bid"
    price: FiniteFloat | None = Field(default=None, ge=0.001, le=128)
    start: FiniteFloat | str | None = None
    end: FiniteFloat | str | None = None

    @model_validator(mode="after")
    def _shape(self) -> DemandBody:
        if (self.offer_id is None) == (self.instance_id is None):
            raise ValueError("name the machine by exactly one of offer_id or instance_id")
        if self.kind == "bid" and self.price is None:
            raise ValueError("a bid needs a price ($/h)")
        if self.kind == "on-demand" and self.price is not None:
            raise ValueError("an on-demand rental pays the host's price: leave price out")
        return self


class RaceBody(_Control):
    """Someone else gets there first. `offer_id` null means the next offer anyone rents. `reject`: the rent
    fails with no_such_ask and the offer is gone. `late`: the rent is accepted, and the instance dies in
    start-up (`exited`), the other way Vast reports a lost race."""

    offer_id: int | None = None
    mode: Literal["reject", "late"] = "reject"
