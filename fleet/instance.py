"""The properties of one `vastai:Instance` resource: the contract between provider, policies and reports.

Inputs (`InstanceSpec`) are what the program declares; the provider's `check` adds `quote` (a live price
quote, so budgets are known at preview). Outputs (`InstanceOutputs`) add what Vast.ai reports after renting.
Keys are snake_case and identical in inputs, outputs and state files.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

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
ImageReference = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_image_reference)]
Geolocation = Annotated[str, AfterValidator(_geolocation)]
Environment = Annotated[dict[str, str], AfterValidator(_environment)]


class Quote(BaseModel):
    """The cheapest current offer meeting an instance's constraints, when it was looked up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offer_id: int
    gpu_name: str
    dph_total: float = Field(description="$/h of the offer with the requested disk (GPU + storage)")
    storage_cost: float = Field(description="$/GB/month of disk on that offer")
    matched: int = Field(description="how many offers met the constraints within max_dph")
    quoted_at: str = Field(description="ISO-8601 UTC time of the search")


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


class InstanceInputs(InstanceSpec):
    """Resource inputs after `check`: the spec plus its price quote."""

    quote: Quote | None = None


class InstanceOutputs(InstanceInputs):
    """Resource outputs: the inputs plus what Vast.ai reports for the rented instance."""

    instance_id: int
    offer_id: int
    machine_id: int | None = None
    dph_total: float
    storage_cost: float
    status: str
    ownership_label: str
    ssh_host: str | None = None
    ssh_port: int | None = None
    public_ip: str | None = None
    start_date: float | None = None
    # Vast's clock, epoch seconds (see providers/vast_instance.py and reports/README.md)
    vast_created_at: float | None = Field(default=None, description="the rent response (adopted: start_date)")
    vast_state_since: float | None = Field(default=None, description="when the current state took effect")
    vast_seen_at: float | None = Field(default=None, description="Vast's clock at the provider's last call")
    local_seen_at: float | None = Field(default=None, description="the provider's time.time() at that call")
