"""Typed views of what Vast.ai returns: offers, instances, charges, the current user, and access control (keys,
roles, members, the audit log; their permission documents are `fleet.permissions`).

Vast's JSON is loose, so every model ignores fields it does not name (Vast adds fields often, and the
user record even carries the account's `api_key`, which must never land in an object we might log) and
coerces the quirks seen on the wire: numbers sent as strings (`"1"`, `"0.95"`, `"2.0"` for an int),
empty strings meaning null, `extra_env` as a list of `[key, value]` pairs, booleans as `0/1`.
The fields other packages rely on are validated; a row that breaks them is an error, not a guess.
Money that is billed (charges, balances) is Decimal; market prices stay float, as Vast computes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

from fleet.budget import ChargeRow, LiveRate, live_rate
from fleet.labels import stack_of
from fleet.permissions import InvalidPermissions, KeyParams, PermissionSet
from fleet.spend import LiveInstance, live_instance

__all__ = [
    "FAILED_STATUSES",
    "PENDING_STATUSES",
    "ApiKeyInfo",
    "AuditEntry",
    "Charge",
    "ChargeItem",
    "ChargeMetadata",
    "CreatedApiKey",
    "Instance",
    "InstancePhase",
    "Member",
    "Offer",
    "Role",
    "User",
    "keep_one",
]


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _lenient_int(value: Any) -> Any:
    """Vast sends ids and counts as `"3"` or `"3.0"` now and then; pydantic's int refuses the latter."""
    value = _blank_to_none(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    return value


OptFloat = Annotated[float | None, BeforeValidator(_blank_to_none)]
OptInt = Annotated[int | None, BeforeValidator(_lenient_int)]
OptBool = Annotated[bool | None, BeforeValidator(_blank_to_none)]
OptStr = Annotated[str | None, BeforeValidator(_blank_to_none)]
OptDecimal = Annotated[Decimal | None, BeforeValidator(_blank_to_none)]
Int = Annotated[int, BeforeValidator(_lenient_int)]


class _VastModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Offer(_VastModel):
    """A rentable ask. `id` is what `create_instance` takes. Prices are $/hour and already include the
    storage for the `allocated_storage` the search asked about (`dph_total = dph_base + storage`)."""

    id: Int
    gpu_name: str
    num_gpus: Int
    dph_total: float
    ask_contract_id: OptInt = None
    machine_id: OptInt = None
    host_id: OptInt = None
    gpu_ram: OptFloat = Field(default=None, description="MB per GPU, as on the wire")
    gpu_total_ram: OptFloat = None
    cpu_cores: OptFloat = None
    cpu_ram: OptFloat = Field(default=None, description="MB, as on the wire")
    disk_space: OptFloat = Field(default=None, description="GB free for the instance's disk")
    dph_base: OptFloat = None
    min_bid: OptFloat = None
    storage_cost: OptFloat = Field(default=None, description="$/GB/month")
    inet_up_cost: OptFloat = None
    inet_down_cost: OptFloat = None
    # Vast computes `reliability2` and often omits plain `reliability` from rows; both mean the same score.
    reliability: OptFloat = Field(default=None, validation_alias=AliasChoices("reliability", "reliability2"))
    rentable: OptBool = None
    rented: OptBool = Field(default=None, description="rented by you, not by anyone")
    verification: OptStr = None
    geolocation: OptStr = None
    cuda_max_good: OptFloat = None
    driver_version: OptStr = None
    dlperf: OptFloat = None
    score: OptFloat = None
    start_date: OptFloat = None
    end_date: OptFloat = None
    duration: OptFloat = None

    @property
    def verified(self) -> bool:
        return self.verification == "verified"


PENDING_STATUSES = frozenset({"created", "loading", "rebooting", "scheduling"})
"""`actual_status` values that may still become `running` by themselves (None also means provisioning)."""
FAILED_STATUSES = frozenset({"exited", "unknown", "offline"})
"""`actual_status` values that never become `running` by themselves: treat them as failures."""

InstancePhase = Literal["pending", "running", "stopped", "failed"]


def _env_pairs(value: Any) -> Any:
    """The v0/v1 instance rows carry `extra_env` as `[[key, value], ...]` (the official CLI crashes on
    anything else); accept a mapping too, and null."""
    if value is None:
        return {}
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for pair in value:
            if not (isinstance(pair, list | tuple) and len(pair) == 2):
                raise ValueError(f"extra_env entry {pair!r} is not a [key, value] pair")
            out[str(pair[0])] = "" if pair[1] is None else str(pair[1])
        return out
    return value


class Instance(_VastModel):
    """A rented instance (a "contract" in Vast's words). `label` is how vastguard finds its own instances."""

    id: Int
    actual_status: OptStr = None
    intended_status: OptStr = None
    cur_state: OptStr = None
    next_state: OptStr = None
    status_msg: OptStr = None
    label: OptStr = None
    machine_id: OptInt = None
    host_id: OptInt = None
    image_uuid: OptStr = None
    gpu_name: OptStr = None
    num_gpus: OptInt = None
    gpu_ram: OptFloat = None
    disk_space: OptFloat = None
    dph_base: OptFloat = None
    dph_total: OptFloat = None
    storage_cost: OptFloat = None
    is_bid: OptBool = None
    min_bid: OptFloat = None
    start_date: OptFloat = None
    end_date: OptFloat = None
    duration: OptFloat = None
    ssh_host: OptStr = None
    ssh_port: OptInt = None
    public_ipaddr: OptStr = None
    reliability2: OptFloat = None
    verification: OptStr = None
    geolocation: OptStr = None
    extra_env: Annotated[dict[str, str], BeforeValidator(_env_pairs)] = Field(default_factory=dict)
    onstart: OptStr = None
    gpu_util: OptFloat = Field(default=None, description="GPU utilisation now, a fraction (None: not running)")

    @property
    def phase(self) -> InstancePhase:
        """Sort `actual_status` the way a wait loop needs it: still coming, there, parked, or dead.

        `exited` / `unknown` / `offline` never recover by themselves, so waiting on them is pointless;
        an unrecognised status counts as pending so that a wait ends at its deadline, not early."""
        status = (self.actual_status or "").lower()
        if status == "running":
            return "running"
        if status in {"stopped", "frozen"}:
            return "stopped"
        if status in FAILED_STATUSES:
            return "failed"
        return "pending"

    def live_rate(self) -> LiveRate:
        """What it bills now, for a budget's accrual and committed storage (`fleet.budget`)."""
        return live_rate(instance_id=self.id, running=self.actual_status == "running", dph_total=self.dph_total,
                         storage_cost=self.storage_cost, disk_gb=self.disk_space, since=self.start_date)

    def live(self) -> LiveInstance:
        """As a spend reading lists it (`fleet.spend`): its status, price, stack and the guard's pause mark."""
        return live_instance(instance_id=self.id, status=self.actual_status, num_gpus=self.num_gpus,
                             dph_total=self.dph_total, label=self.label, stack=stack_of(self.label))


_PHASE_ORDER: dict[InstancePhase, int] = {"running": 0, "pending": 1, "stopped": 2, "failed": 3}


def keep_one(instances: Iterable[Instance]) -> tuple[Instance, list[Instance]]:
    """Of several instances that each claim to be the one thing (one rent's label, one ownership tag): the one
    to keep, and the rest, which only bill. The one furthest along is kept (running, then still starting, then
    stopped; a dead one last), and the oldest of equals (it has been booting longest)."""
    ordered = sorted(instances, key=lambda i: (_PHASE_ORDER[i.phase], i.id))
    if not ordered:
        raise ValueError("keep_one needs at least one instance")
    return ordered[0], ordered[1:]


class ChargeMetadata(_VastModel):
    label: OptStr = None
    template_id: OptInt = None


class ChargeItem(_VastModel):
    """One line of a charge: `gpu`, `disk`, `bwd` (download), `bwu` (upload)."""

    type: OptStr = None
    description: OptStr = None
    amount: OptDecimal = None
    quantity: OptDecimal = Field(default=None, description="hours (a gpu item: running hours, at its rate)")
    start: OptFloat = None
    end: OptFloat = None
    rate: OptDecimal = Field(default=None, description="$/h")
    items: list[ChargeItem] = Field(default_factory=list)

    @field_validator("items", mode="before")
    @classmethod
    def _null_items(cls, value: Any) -> Any:
        return [] if value is None else value


_SOURCE = re.compile(r"^(?P<kind>[a-z_]+)-(?P<id>\d+)$")


class Charge(_VastModel):
    """What Vast billed for one source (an instance, a volume, ...) over `start`..`end` (epoch seconds)."""

    type: str
    amount: Decimal
    source: OptStr = None
    description: OptStr = None
    start: OptFloat = None
    end: OptFloat = None
    metadata: ChargeMetadata = Field(default_factory=ChargeMetadata)
    items: list[ChargeItem] = Field(default_factory=list)

    @field_validator("metadata", mode="before")
    @classmethod
    def _null_metadata(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("items", mode="before")
    @classmethod
    def _null_items(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def instance_id(self) -> int | None:
        """`source` is `instance-<id>` for instance charges; the id is what reconciliation joins on."""
        match = _SOURCE.match(self.source or "")
        if match is None or match["kind"] != "instance":
            return None
        return int(match["id"])

    def budget_row(self) -> ChargeRow:
        """The charge as a budget apportions it (`fleet.budget.row_share`): its GPU and storage items."""
        gpu = next((i for i in self.items if i.type == "gpu"), None)
        disk = next((i for i in self.items if i.type == "disk"), None)
        return ChargeRow(instance_id=self.instance_id, amount=self.amount, start=self.start, end=self.end,
                         gpu=gpu.amount if gpu else None, gpu_rate=gpu.rate if gpu else None,
                         disk=disk.amount if disk else None)


class User(_VastModel):
    """The account behind the key. Vast's record includes `api_key`; it is deliberately not a field."""

    id: Int
    email: OptStr = None
    username: OptStr = None
    balance: OptDecimal = None
    credit: OptDecimal = None
    balance_threshold: OptDecimal = None
    has_billing: OptBool = None


# -- access control: teams, roles, members, API keys, the audit log -------------------------------------------


def _permissions(value: Any) -> Any:
    """Vast sends a key's permissions as the document, its JSON text, or `false` (no document of its own)."""
    if value is None or value is False or value == "":
        return None
    if isinstance(value, PermissionSet):
        return value
    try:
        return PermissionSet.parse(value)
    except InvalidPermissions as exc:
        raise ValueError(str(exc)) from None


def _key_params(value: Any) -> Any:
    if isinstance(value, KeyParams):
        return value
    try:
        return KeyParams.parse(value)
    except InvalidPermissions as exc:
        raise ValueError(str(exc)) from None


Permissions = Annotated[PermissionSet | None, BeforeValidator(_permissions)]


class CreatedApiKey(_VastModel):
    """A key just created: the only time Vast shows it. `key` is a `SecretStr` (`key.get_secret_value()`), so
    that printing, logging or repr of this object never shows it; store it as a secret at once."""

    id: Int
    key: SecretStr = Field(repr=False)
    permissions: Permissions = None


class ApiKeyInfo(_VastModel):
    """A key as Vast lists it (never the key itself). In a team's context `team_id` names the team."""

    id: Int
    user_id: OptInt = None
    name: OptStr = None
    key_type: OptStr = None
    primary: OptBool = None
    team_id: OptInt = None
    team_name: OptStr = None
    team_owner: OptInt = None
    permissions: Permissions = None
    key_params: Annotated[KeyParams, BeforeValidator(_key_params)] = Field(default_factory=KeyParams)
    created_at: OptFloat = None


class Role(_VastModel):
    """A team role. `identifier` marks Vast's default ones (`team_owner`, `team_manager`, `team_member`)."""

    id: Int
    name: str
    permissions: Annotated[PermissionSet, BeforeValidator(_permissions)]
    identifier: OptStr = None


class Member(_VastModel):
    id: Int
    username: OptStr = None
    email: OptStr = None
    fullname: OptStr = None
    roles: list[str] = Field(default_factory=list)


class AuditEntry(_VastModel):
    """One important action a key took (`api_route`), from which address, with which arguments."""

    api_route: str
    api_key_id: OptInt = None
    user_id: OptInt = None
    ip_address: OptStr = None
    args: Any = None
    created_at: OptFloat = None
    id: OptInt = None
