"""The Pulumi engine's structured events, as the pinned engine (3.259) writes them: the input of CI's verdicts.

`pulumi preview --event-log FILE` writes one JSON object per line (`sequence`, `timestamp` and exactly one
`<kind>Event`); `pulumi policy analyze --json` prints the same event objects. The flag exists only when
`PULUMI_DEBUG_COMMANDS=true` (engine 3.259 registers it behind that switch, as Pulumi's Automation API does),
so `ci.py` sets it. What we read of them:

- `policyEvent`: one violation: `policyName`, `enforcementLevel` (advisory, mandatory, remediate),
  `resourceUrn` (the stack's URN for stack policies), `message` (the policy's description on its first line,
  then the violation's own text);
- `resourcePreEvent.metadata`: one step: `op` (same, create, update, replace, create-replacement,
  delete, delete-replaced, ...), `urn`, `type`, `old` and `new` states with `inputs` and `outputs`;
- `diagnosticEvent` with severity `error`: why a preview failed when no policy denied it;
- `summaryEvent`: `result` (succeeded/failed) and `resourceChanges` once the operation ends.

Secret values arrive already masked by the engine (`[secret]`); values unknown during preview arrive as
Pulumi's sentinel string `UNKNOWN` below. Models are lenient (`extra="ignore"`): the engine adds fields
between versions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""Pulumi's wire value for an output not known during preview (sdk/go/common/resource/plugin/rpc.go)."""


class EventLogError(ValueError):
    """An event log that is not the engine's JSON lines; the message names the line."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class PolicyEvent(_Lenient):
    resource_urn: str = Field(default="", alias="resourceUrn")
    message: str = ""
    policy_name: str = Field(alias="policyName")
    policy_pack_name: str = Field(default="", alias="policyPackName")
    enforcement_level: str = Field(alias="enforcementLevel")


class StepState(_Lenient):
    type: str = ""
    urn: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)


class StepMetadata(_Lenient):
    op: str
    urn: str
    type: str = ""
    old: StepState | None = None
    new: StepState | None = None


class ResourcePreEvent(_Lenient):
    metadata: StepMetadata


class DiagnosticEvent(_Lenient):
    message: str = ""
    severity: str = ""
    urn: str = ""


class SummaryEvent(_Lenient):
    result: str = ""
    resource_changes: dict[str, int] = Field(default_factory=dict, alias="resourceChanges")
    is_preview: bool = Field(default=False, alias="isPreview")


class EngineEvent(_Lenient):
    sequence: int = 0
    timestamp: int = 0
    policy_event: PolicyEvent | None = Field(default=None, alias="policyEvent")
    resource_pre_event: ResourcePreEvent | None = Field(default=None, alias="resourcePreEvent")
    diagnostic_event: DiagnosticEvent | None = Field(default=None, alias="diagnosticEvent")
    summary_event: SummaryEvent | None = Field(default=None, alias="summaryEvent")


def _objects(text: str) -> Iterator[tuple[int, Any]]:
    stripped = text.strip()
    if stripped.startswith("["):  # a JSON array of events
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise EventLogError(f"event log is not JSON: {err}") from None
        yield from enumerate(items, start=1)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError:
            raise EventLogError(f"event log line {number} is not JSON: {line[:80]!r}") from None


def parse_events(text: str) -> list[EngineEvent]:
    """Every event of a log (JSON lines or a JSON array), in the engine's order."""
    events = []
    for number, item in _objects(text):
        try:
            events.append(EngineEvent.model_validate(item))
        except ValidationError as err:
            raise EventLogError(f"event {number} is not an engine event: {str(err).splitlines()[0]}") from None
    return sorted(events, key=lambda e: e.sequence)


def steps(events: Iterable[EngineEvent]) -> list[StepMetadata]:
    return [e.resource_pre_event.metadata for e in events if e.resource_pre_event is not None]


def policy_events(events: Iterable[EngineEvent]) -> list[PolicyEvent]:
    return [e.policy_event for e in events if e.policy_event is not None]


def summary(events: Iterable[EngineEvent]) -> SummaryEvent | None:
    found = [e.summary_event for e in events if e.summary_event is not None]
    return found[-1] if found else None


def errors(events: Iterable[EngineEvent]) -> list[str]:
    """The engine's and program's error diagnostics, without the generic last line `preview failed`."""
    out = []
    for e in events:
        d = e.diagnostic_event
        if d is not None and d.severity == "error":
            text = d.message.strip()
            if text and text not in {"preview failed", "update failed"}:
                out.append(text)
    return out
