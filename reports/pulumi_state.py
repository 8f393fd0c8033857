"""What a DIY Pulumi backend stores per update, parsed into typed models (the reports' input boundary).

Layout (pulumi 3.259, `pkg/backend/diy`): every update, refresh and destroy, failed ones too, writes
`.pulumi/history/<project>/<stack>/<stack>-<unixnano>.history.json` (an `UpdateInfo`) and next to it a full copy
of the stack's checkpoint `<stack>-<unixnano>.checkpoint.json`. Previews are not recorded. Either file may be
gzip- or zstd-compressed whatever its name says (Pulumi detects compression by its magic bytes, and the
`PULUMI_DIY_BACKEND_GZIP` switch can change between updates), so we sniff bytes too.

Quirks the models absorb:
- `startTime`/`endTime` are Unix seconds in the history files but ISO strings in `pulumi stack history --json`.
- `config` values are strings in files, `{"value", "secret"}` objects in the CLI's JSON; the reports ignore them.
- A secret output is an envelope `{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
  "ciphertext": ...}`; any field the reports read that arrives as a secret is unknown, never zero.
- After a destroy the checkpoint's `latest` has no `resources` key at all.
- An instance's outputs are read as `fleet.instance.InstanceRecord`, the contract's record of them (every field
  optional: older providers wrote fewer). Only resources of the instance type are validated: a checkpoint also
  holds the stack, the provider and, in large fleets, megabytes of stack traces we skip.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from fleet.instance import INSTANCE_TYPE, InstanceRecord

STACK_TYPE = "pulumi:pulumi:Stack"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class StateFormatError(ValueError):
    """A history or checkpoint file that is not what Pulumi writes; the message names the file."""


def _epoch_or_iso(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return value


Timestamp = Annotated[datetime, BeforeValidator(_epoch_or_iso)]


class UpdateRecord(BaseModel):
    """One `<stack>-<unixnano>.history.json` (Pulumi's `backend.UpdateInfo`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: str
    start_time: Timestamp = Field(alias="startTime")
    end_time: Timestamp | None = Field(default=None, alias="endTime")
    result: str = "in-progress"
    message: str = ""
    environment: dict[str, str] = Field(default_factory=dict)
    resource_changes: dict[str, int] = Field(default_factory=dict, alias="resourceChanges")
    version: int = 0


def without_secrets(outputs: dict[str, Any]) -> dict[str, Any]:
    """A secret (or any object where a scalar belongs) is unknown to a report: None, never a guess."""
    return {k: None if isinstance(v, dict) and k in InstanceRecord.model_fields else v for k, v in outputs.items()}


class InstanceResource(BaseModel):
    """One instance resource in a checkpoint. `pending_delete` is Pulumi's `delete: true` (an old copy that a
    create-before-delete replacement has not removed yet, e.g. after an interrupted update): still rented."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    urn: str
    id: str | None = None
    created: datetime | None = None
    modified: datetime | None = None
    pending_delete: bool = Field(default=False, alias="delete")
    outputs: InstanceRecord = Field(default_factory=InstanceRecord)

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @cached_property
    def key(self) -> str:
        """Identity across checkpoints: the Vast instance id. A replacement keeps the URN but gets a new id."""
        if self.outputs.instance_id is not None:
            return str(self.outputs.instance_id)
        return self.id or self.urn


class Snapshot(BaseModel):
    """The part of a checkpoint the reports need: when it was written, the stack's team, its instances."""

    model_config = ConfigDict(frozen=True)

    written_at: datetime | None = None
    team: str | None = None
    platform: bool = Field(default=False, description="the platform stack (teams' access, no instance of its own)")
    instances: tuple[InstanceResource, ...] = ()
    pending_creates: int = Field(default=0, description="creates whose outcome Pulumi never learned")


class HistoryEntry(BaseModel):
    """One recorded operation on a stack: its update record and the checkpoint it left (None if missing)."""

    model_config = ConfigDict(frozen=True)

    project: str
    stack: str
    sequence: int = Field(description="1-based position in the stack's history, oldest first")
    record: UpdateRecord
    snapshot: Snapshot | None


def decode_bytes(data: bytes, *, name: str) -> Any:
    """JSON from a possibly compressed Pulumi file."""
    if data[:2] == GZIP_MAGIC:
        data = gzip.decompress(data)
    elif data[:4] == ZSTD_MAGIC:
        raise StateFormatError(
            f"{name} is zstd-compressed (PULUMI_DIY_BACKEND_ZSTD); Python 3.11 cannot read zstd without a "
            "dependency: re-save the stack without zstd or ask for `zstandard` to be added"
        )
    try:
        return json.loads(data)
    except json.JSONDecodeError as err:
        raise StateFormatError(f"{name} is not JSON: {err}") from None


def parse_update(raw: Any, *, name: str) -> UpdateRecord:
    try:
        return UpdateRecord.model_validate(raw)
    except ValidationError as err:
        raise StateFormatError(f"{name} is not a Pulumi update record: {err}") from None


def parse_instance(resource: dict[str, Any]) -> InstanceResource:
    try:
        return InstanceResource.model_validate(resource)
    except ValidationError:
        # Rare: a secret output. Validating the common case without per-field Python hooks is what keeps
        # parsing a 2,000-update history close to the cost of json.loads.
        outputs = resource.get("outputs")
        if not isinstance(outputs, dict):
            raise
        return InstanceResource.model_validate({**resource, "outputs": without_secrets(outputs)})


def parse_checkpoint(raw: Any, *, name: str,
                     instance: Callable[[dict[str, Any]], InstanceResource] = parse_instance) -> Snapshot:
    """A checkpoint file (`{"version": 3, "checkpoint": {"latest": deployment}}`) or a bare deployment as
    `pulumi stack export` prints it (`{"version": 3, "deployment": deployment}`)."""
    if not isinstance(raw, dict):
        raise StateFormatError(f"{name} is not a Pulumi checkpoint")
    if "deployment" in raw:
        latest = raw["deployment"]
    else:
        checkpoint = raw.get("checkpoint")
        if not isinstance(checkpoint, dict):
            raise StateFormatError(f"{name} is not a Pulumi checkpoint (no `checkpoint` object)")
        latest = checkpoint.get("latest") or {}
    if not isinstance(latest, dict):
        raise StateFormatError(f"{name}: `latest` is not an object")
    return parse_deployment(latest, name=name, instance=instance)


def parse_deployment(latest: dict[str, Any], *, name: str,
                     instance: Callable[[dict[str, Any]], InstanceResource] = parse_instance) -> Snapshot:
    team: str | None = None
    platform = False
    instances: list[InstanceResource] = []
    try:
        for resource in latest.get("resources") or ():
            rtype = resource.get("type")
            if rtype == INSTANCE_TYPE:
                instances.append(instance(resource))
            elif rtype == STACK_TYPE:
                outputs = resource.get("outputs") or {}
                value = outputs.get("team")
                team = value if isinstance(value, str) else None
                platform = outputs.get("platform") is True
        manifest = latest.get("manifest") or {}
        written = manifest.get("time")
        pending = [op for op in latest.get("pending_operations") or () if op.get("type") == "creating"]
        return Snapshot(
            written_at=datetime.fromisoformat(written) if isinstance(written, str) else None,
            team=team, platform=platform, instances=tuple(instances), pending_creates=len(pending),
        )
    except (ValidationError, ValueError, AttributeError) as err:
        raise StateFormatError(f"{name} has an unexpected resource shape: {err}") from None


_PROPS = tuple(InstanceRecord.model_fields)


class CheckpointParser:
    """Parses a stack's successive checkpoints, reusing the parsed resource when its state is unchanged.

    Consecutive checkpoints of a long history repeat almost every resource verbatim (an update touches a few
    instances of a fleet); comparing the raw JSON objects is a C-level dict comparison, far cheaper than
    validating them again, and the fold recognises the reused object and skips it too."""

    def __init__(self) -> None:
        self._previous: dict[tuple[Any, Any], tuple[tuple[Any, ...], InstanceResource]] = {}
        self._current: dict[tuple[Any, Any], tuple[tuple[Any, ...], InstanceResource]] = {}

    def checkpoint(self, raw: Any, *, name: str) -> Snapshot:
        self._current = {}
        snapshot = parse_checkpoint(raw, name=name, instance=self._remember)
        self._previous = self._current
        return snapshot

    def _remember(self, resource: dict[str, Any]) -> InstanceResource:
        key = (resource.get("urn"), resource.get("id"))
        # Only what InstanceResource reads: the rest (inputs, stack traces, outputs we ignore) tells nothing more.
        outputs = resource.get("outputs")
        read = tuple(map(outputs.get, _PROPS)) if isinstance(outputs, dict) else outputs
        state = (read, resource.get("modified"), resource.get("created"), resource.get("delete"))
        seen = self._previous.get(key)
        if seen is not None and seen[0] == state:
            self._current[key] = seen
            return seen[1]
        parsed = parse_instance(resource)
        self._current[key] = (state, parsed)
        return parsed
