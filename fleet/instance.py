"""The properties of one `vastai:Instance` resource: the contract between provider, policies and reports.

Inputs (`InstanceSpec`) are what the program declares; the provider's `check` adds `quote` (a live price
quote, so budgets are known at preview). Outputs (`InstanceOutputs`) add what Vast.ai reports after renting.
Keys are snake_case and identical in inputs, outputs and state files.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

INSTANCE_TYPE = "pulumi-python:dynamic/vastai:Instance"
DesiredState = Literal["running", "stopped"]


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

    model_config = ConfigDict(extra="forbid")

    team: str = Field(min_length=1)
    gpu_name: str = Field(min_length=1, description="marketplace name or family, e.g. 'RTX 4090' or 'A100'")
    num_gpus: int = Field(default=1, ge=1, le=16)
    image: str = Field(min_length=1, max_length=1024)
    disk_gb: float = Field(default=16.0, ge=8)
    max_dph: float = Field(gt=0, le=128, description="$/h cap for this instance (GPU + storage)")
    min_reliability: float = Field(default=0.95, ge=0, le=1)
    verified_only: bool = True
    geolocation: str | None = None
    label: str | None = Field(default=None, max_length=200)
    onstart: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
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
