"""A previewed change's estimated cost, before and after, per team: a pure model in Decimal (Infracost's
"compute, then render": renderers in vastguard/summary.py).

Each instance is estimated as the policy pack judges it (`fleet.costs.estimate_instance`): its actual $/h
once Vast rents it, else its quote (taken by the provider's `check`), else its `max_dph` cap. When none of
these is a known number (a value unknown at preview, or missing), the instance's cost is unknown: a total
that includes it is unknown too (None), and the instance is named, never counted as $0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fleet.costs import HOURS_PER_DAY, HOURS_PER_MONTH, CostBasis, estimate_instance
from vastguard.engine_events import StepMetadata

INSTANCE_TYPE = "vastai:Instance"
_GONE = frozenset({"delete", "discard", "read-discard", "remove-pending-replace"})
_NEW = frozenset({"create", "create-replacement", "replace", "import", "import-replacement"})
Basis = Literal["actual", "quote", "cap", "unknown"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class InstanceCost(_Model):
    name: str
    hourly: Decimal | None
    basis: Basis


class FleetEstimate(_Model):
    """A fleet's estimated cost; `hourly` None when any instance's cost is unknown."""

    instances: tuple[InstanceCost, ...] = ()

    @property
    def hourly(self) -> Decimal | None:
        total = Decimal(0)
        for inst in self.instances:
            if inst.hourly is None:
                return None
            total += inst.hourly
        return total

    @property
    def daily(self) -> Decimal | None:
        return None if self.hourly is None else self.hourly * HOURS_PER_DAY

    @property
    def monthly(self) -> Decimal | None:
        return None if self.hourly is None else self.hourly * HOURS_PER_MONTH

    @property
    def unknown(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.instances if i.hourly is None)


class CostDiff(_Model):
    team: str
    before: FleetEstimate
    after: FleetEstimate
    changes: dict[str, int] = Field(default_factory=dict, description="instance steps by operation")

    @property
    def hourly_delta(self) -> Decimal | None:
        if self.before.hourly is None or self.after.hourly is None:
            return None
        return self.after.hourly - self.before.hourly


def estimate(name: str, props: Any) -> InstanceCost:
    """One instance from its properties (outputs once rented, inputs after check for a new one)."""
    if not isinstance(props, Mapping):  # the whole value unknown at preview
        return InstanceCost(name=name, hourly=None, basis="unknown")
    found = estimate_instance(CostBasis.from_properties(props))
    if found is None:
        return InstanceCost(name=name, hourly=None, basis="unknown")
    return InstanceCost(name=name, hourly=found.hourly, basis=found.basis)


def _is_instance(step: StepMetadata) -> bool:
    types = [step.type, *(state.type for state in (step.new, step.old) if state is not None)]
    return any(t.endswith(INSTANCE_TYPE) for t in types)


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def cost_diff(team: str, instance_steps: Iterable[StepMetadata]) -> CostDiff:
    """Before = every instance the stack holds (each step's old outputs); after = the same less removed ones,
    updated ones in their new state, new and replacing ones at their quote: the basis the pack's budgets use."""
    before: dict[str, Mapping[str, Any]] = {}
    after: dict[str, Any] = {}
    changes: dict[str, int] = {}
    for step in instance_steps:
        if not _is_instance(step):
            continue
        name = _name(step.urn)
        if step.op != "delete-replaced":
            changes[step.op] = changes.get(step.op, 0) + 1
        old = step.old.outputs if step.old is not None and step.op not in {"create", "import"} else None
        if old:
            before.setdefault(name, old)
        if step.op in _GONE:
            after.pop(name, None)
        elif step.op == "delete-replaced":
            continue  # its replacement is listed under the same name and stays
        elif step.op in _NEW:
            after[name] = step.new.inputs if step.new is not None else None
        else:  # same, update, refresh: the rented instance, with what the new inputs change
            merged = dict(old or {})
            inputs = step.new.inputs if step.new is not None else {}
            merged.update({k: inputs[k] for k in ("state", "disk_gb") if k in inputs})
            after[name] = merged
    return CostDiff(
        team=team,
        before=FleetEstimate(instances=tuple(estimate(n, p) for n, p in sorted(before.items()))),
        after=FleetEstimate(instances=tuple(estimate(n, p) for n, p in sorted(after.items()))),
        changes=dict(sorted(changes.items())),
    )
