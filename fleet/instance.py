"""The properties of one `vastai:Instance` resource: the one contract between provider, policies and reports.

- `InstanceSpec`: what a team declares for one instance (the program builds it from the fleet).
- `InstanceInputs`: the resource inputs, the spec plus the ownership tag and, after the provider's `check`,
  a live price `quote` (so budgets are known at preview). The policy pack's resource rules read these.
- `InstanceOutputs`: the resource outputs, the inputs plus what Vast.ai reports for the rented instance. The
  provider builds every create, read and update result through it; the pack's stack rules read these.
- `InstanceRecord`: the outputs as a state file records them, for the reports: every field optional (older
  providers wrote fewer, a secret is unknown) and unchecked (history is read, not judged), each one a field of
  `InstanceOutputs` with the same type, which is checked when this module is imported.

Keys are snake_case and identical in inputs, outputs and state files. Unknown is None, never 0: a price Vast did
not report is unknown, and the money math (`fleet.costs`) keeps it distinct from zero.

How to add a field (the pattern the next resources copy):
1. Declare it once, here: an input on `InstanceSpec` (declared by the team; add it to `fleet.declaration.Group`
   too) or an output on `InstanceOutputs` (reported by Vast), with its type, bounds and a description.
2. The provider (providers/vast_instance.py) fills an output in `_outputs`; `check`, `diff` and the replacement
   rules (`REPLACE_FIELDS` / `IN_PLACE_FIELDS`) decide what a changed input does to the rented instance.
3. The pack reads it through `policies.instances.InstanceView`, whose values are validated by this contract's
   field types (unknown at preview becomes the worst case).
4. The reports read it through `InstanceRecord`: add it there, optional, with the contract's type.
Then the field has one name everywhere, and a rename that misses one of these is an error, not a silent None.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

INSTANCE_TYPE = "pulumi-python:dynamic/vastai:Instance"
DesiredState = Literal["running", "stopped"]
MAX_DISK_GB = 4096

# Docker's reference grammar (github.com/distribution/reference): an optional registry host, a lower-case
# repository path, then an optional :tag and @digest. A malformed reference would only fail when the rented
# instance pulls its image, after the rent is paid, so it is refused before anything is rented.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"\w[\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII)
GEOLOCATION = re.compile(r"[A-Za-z]{2}(?:\s*,\s*[A-Za-z]{2})*", re.ASCII)


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode reads `true` as 1; in a fleet that is a YAML slip, never a count, a size or a price.
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {str(value).lower()}")
    return value


def _image_reference(value: str) -> str:
    if not IMAGE_REFERENCE.fullmatch(value):
        raise ValueError(
            "not a container image reference: a lower-case repository path, optionally after a registry host "
            "and followed by :tag and/or @sha256:<digest>, without spaces (e.g. "
            "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime or nvcr.io/nvidia/pytorch:24.01-py3)")
    return value


def _geolocation(value: str) -> str:
    # The search takes two-letter country codes; anything else either matches nothing or is refused by the query.
    if not GEOLOCATION.fullmatch(value.strip()):
        raise ValueError("country codes separated by commas, e.g. US or 'US,CA'")
    return value


def _environment(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if not name or "=" in name or "\0" in name or "\0" in text:
            raise ValueError(f"{name!r}: an environment variable needs a non-empty name without '=' and no NUL bytes")
    return value


Number = BeforeValidator(_not_bool)


def _check_bid(value: float | None, info: ValidationInfo) -> float | None:
    # Runs for the default too (validate_default), after `max_dph` and `interruptible`, so that a bid problem is
    # reported on the field the user fixes; when those failed themselves there is nothing to compare with.
    data = info.data or {}  # none when the field is read on its own (the policy pack's readers)
    if "interruptible" in data:
        problem = bid_problem(interruptible=data["interruptible"], max_bid=value, max_dph=data.get("max_dph"))
        if problem is not None:
            raise ValueError(problem)
    return value
ImageReference = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_image_reference)]
Geolocation = Annotated[str, AfterValidator(_geolocation)]
Environment = Annotated[dict[str, str], AfterValidator(_environment)]
MaxBid = Annotated[
    Annotated[float, Number, Field(gt=0, le=128)] | None, AfterValidator(_check_bid),
    Field(validate_default=True, description="$/h the instance bids for its machine (interruptible only; storage "
                                             "is billed on top): a team's max_bid, and the bid placed")]


class Quote(BaseModel):
    """The cheapest current offer meeting an instance's constraints, when it was looked up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offer_id: int
    gpu_name: str
    dph_total: float = Field(description="$/h of the offer with the requested disk (GPU + storage)")
    storage_cost: float | None = Field(description="$/GB/month of disk on that offer; None when Vast did not say")
    matched: int = Field(description="how many offers met the constraints within max_dph")
    quoted_at: str = Field(description="ISO-8601 UTC time of the search")
    bid: float | None = Field(default=None, description="the bid an interruptible instance places there ($/h, "
                                                        "its max_bid; dph_total is it plus storage); None: on demand")


def bid_problem(*, interruptible: bool, max_bid: float | None, max_dph: float | None) -> str | None:
    """What is wrong with an instance's bid settings, or None. Vast bills an interruptible instance its bid
    while it runs and storage on top (`dph_total = bid + storage`), so the bid must leave room for storage
    under `max_dph`, the cap on the whole $/h; an on-demand instance pays the host's price and has no bid."""
    if interruptible and max_bid is None:
        return "an interruptible instance needs max_bid: the $/h it bids for the machine (storage is billed on top)"
    if not interruptible and max_bid is not None:
        return "max_bid applies to interruptible instances only: set interruptible: true, or remove max_bid"
    if max_bid is not None and max_dph is not None and max_bid >= max_dph:
        return (f"max_bid {max_bid:g} must be below max_dph {max_dph:g}: max_dph caps the bid plus the disk's "
                "storage, which Vast bills on top of the bid")
    return None


class InstanceSpec(BaseModel):
    """What a team declares for one instance (the resource inputs, before the quote)."""

    # NaN passes no comparison and infinity no JSON encoder: both are refused here, by name.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    team: str = Field(min_length=1)
    gpu_name: str = Field(min_length=1, description="marketplace name or family, e.g. 'RTX 4090' or 'A100'")
    num_gpus: Annotated[int, Number] = Field(default=1, ge=1, le=16)
    image: ImageReference
    disk_gb: Annotated[float, Number] = Field(default=16.0, ge=8, le=MAX_DISK_GB)
    max_dph: Annotated[float, Number] = Field(gt=0, le=128, description="$/h cap for this instance (GPU + storage)")
    min_reliability: Annotated[float, Number] = Field(default=0.95, ge=0, le=1)
    verified_only: bool = True
    geolocation: Geolocation | None = None
    label: str | None = Field(default=None, max_length=200)
    onstart: str | None = None
    env: Environment = Field(default_factory=dict)
    state: DesiredState = "running"
    interruptible: bool = Field(default=False, description="rent at a bid (Vast's interruptible instances): "
                                "cheaper, paused while a higher-priority rental holds the machine")
    max_bid: MaxBid = None


OWNERSHIP_TAG = re.compile(r"vg:[^/\s]+/[^\s#\[\]]+")


def _ownership_tag(value: str) -> str:
    if not OWNERSHIP_TAG.fullmatch(value):
        raise ValueError("an ownership tag is vg:<stack>/<name>")
    return value


class InstanceInputs(InstanceSpec):
    """Resource inputs after `check`: the spec, the ownership tag, and the price quote."""

    ownership_tag: Annotated[str, AfterValidator(_ownership_tag)] = Field(
        description="`vg:<stack>/<name>`: in the provider process `pulumi.get_stack()` is a placeholder, so the "
                    "program passes the stack in; the instance's Vast label carries it (see `vast_label`)")
    quote: Quote | None = None


class InstanceOutputs(InstanceInputs):
    """Resource outputs: the inputs plus what Vast.ai reports for the rented instance.

    `state` is what Vast has (a refresh records an instance stopped, or dead, behind Pulumi's back as stopped),
    so that `up` converges it back to the declaration; an outbid interruptible instance is the exception: it
    keeps `running` with `outbid` true, since it resumes by itself and no `up` should touch it."""

    instance_id: int
    offer_id: int | None = Field(default=None, description="the offer rented (None: an adopted instance's)")
    machine_id: int | None = None
    dph_total: float | None = Field(default=None, description="$/h while running (GPU + disk); None: unknown")
    storage_cost: float | None = Field(default=None, description="$/GB/month of its disk; None: unknown")
    status: str = Field(description="Vast's `actual_status` (`provisioning` before it reports one)")
    bid: float | None = Field(default=None, description="the bid Vast holds for an interruptible instance ($/h, "
                                                        "its dph_base); None: on demand")
    outbid: bool = Field(default=False, description="an interruptible instance paused because a higher-priority "
                         "rental holds its machine: not running, not failed; it resumes by itself")
    vast_label: str | None = Field(
        default=None, description="the label on Vast: the user's `label`, then `[<ownership tag>#<digest>]`")
    ssh_host: str | None = None
    ssh_port: int | None = None
    public_ip: str | None = None
    start_date: float | None = None
    # Vast's clock, epoch seconds (see providers/vast_instance.py and reports/README.md)
    vast_created_at: float | None = Field(default=None, description="the rent response (adopted: start_date)")
    vast_state_since: float | None = Field(default=None, description="when the current state took effect")
    vast_seen_at: float | None = Field(default=None, description="Vast's clock at the provider's last call")
    local_seen_at: float | None = Field(default=None, description="the provider's time.time() at that call")


OUTPUT_FIELDS: tuple[str, ...] = tuple(f for f in InstanceOutputs.model_fields if f not in InstanceInputs.model_fields)
"""The fields only the outputs have (the resource declares them, unknown until Vast reports them)."""


class InstanceRecord(BaseModel):
    """An instance's outputs as a state file records them (see the module docstring): what the reports read, and
    what the provider reads back of the previous outputs."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    team: str | None = None
    gpu_name: str | None = None
    num_gpus: int | None = None
    disk_gb: float | None = None
    state: DesiredState | None = None
    status: str | None = None
    interruptible: bool | None = None
    bid: float | None = None
    outbid: bool | None = None
    label: str | None = None
    instance_id: int | None = None
    offer_id: int | None = None
    vast_label: str | None = None
    dph_total: float | None = None
    storage_cost: float | None = None
    start_date: float | None = None
    vast_created_at: float | None = None
    vast_state_since: float | None = None
    vast_seen_at: float | None = None
    local_seen_at: float | None = None


def _check_record(record: type[BaseModel], outputs: type[BaseModel]) -> None:
    """Each record field is an output field of the same type (optional): a field renamed or retyped in the
    contract and not in the record fails here, at import, rather than reading None from every state file."""
    for name, info in record.model_fields.items():
        declared = outputs.model_fields.get(name)
        if declared is None:
            raise TypeError(f"{record.__name__}.{name} is not a field of {outputs.__name__}")
        want = declared.annotation
        if want is None or info.annotation != want | None:
            raise TypeError(f"{record.__name__}.{name} is {info.annotation}, {outputs.__name__}.{name} is {want}")


_check_record(InstanceRecord, InstanceOutputs)
