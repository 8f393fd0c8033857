"""The one contract of `vastai:Instance` (fleet/instance.py) and the money math on it (fleet/costs.py): unknown
money stays unknown, and the reports' record of the outputs cannot drift from the outputs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import BaseModel

from fleet.costs import CostBasis, FleetCost, Rate, estimate_instance, fleet_cost
from fleet.instance import OUTPUT_FIELDS, InstanceInputs, InstanceOutputs, InstanceRecord, Quote, _check_record

INPUTS = InstanceInputs(team="ml-research", gpu_name="RTX 4090", image="pytorch/pytorch:2.4.0", disk_gb=72,
                        max_dph=0.5, ownership_tag="vg:ml-research/train-0")


def rented(**changes: object) -> InstanceOutputs:
    return InstanceOutputs.model_validate({**INPUTS.model_dump(), "instance_id": 7, "status": "running",
                                           "dph_total": 0.4, "storage_cost": 0.2, **changes})


def test_outputs_extend_inputs_with_what_vast_reports() -> None:
    assert set(InstanceOutputs.model_fields) == set(InstanceInputs.model_fields) | set(OUTPUT_FIELDS)
    assert "vast_label" in OUTPUT_FIELDS and "ownership_label" not in InstanceOutputs.model_fields
    with pytest.raises(ValueError, match="ownership tag"):
        InstanceInputs.model_validate({**INPUTS.model_dump(), "ownership_tag": "train-0"})


def test_every_record_field_is_an_output_of_the_same_type() -> None:
    _check_record(InstanceRecord, InstanceOutputs)

    class Renamed(BaseModel):
        ownership_label: str | None = None

    class Retyped(BaseModel):
        dph_total: str | None = None

    with pytest.raises(TypeError, match=r"Renamed\.ownership_label is not a field of InstanceOutputs"):
        _check_record(Renamed, InstanceOutputs)
    with pytest.raises(TypeError, match=r"Retyped\.dph_total is .*str.*, InstanceOutputs\.dph_total is .*float"):
        _check_record(Retyped, InstanceOutputs)


def test_estimates_rest_on_actual_then_quote_then_cap() -> None:
    quoted = INPUTS.model_copy(update={"quote": Quote(offer_id=1, gpu_name="RTX 4090", dph_total=0.3,
                                                      storage_cost=0.1, matched=3, quoted_at="x")})
    assert estimate_instance(CostBasis.of(rented())) is not None
    assert [(e.hourly, e.basis) for e in map(estimate_instance, map(CostBasis.of, (rented(), quoted, INPUTS)))
            if e is not None] == [(Decimal("0.4"), "actual"), (Decimal("0.3"), "quote"), (Decimal("0.5"), "cap")]


def test_unknown_money_is_never_zero() -> None:
    # A stopped instance whose storage price Vast never reported: bounded by its running rate, not free.
    stopped = CostBasis.of(rented(state="stopped", storage_cost=None))
    assert estimate_instance(stopped) == estimate_instance(CostBasis.of(rented()))
    assert estimate_instance(CostBasis.of(rented(state="stopped"))) == estimate_instance(
        CostBasis(state="stopped", disk_gb=Decimal(72), actual=Rate.of(0.4, 0.2)))
    # Nothing known at all: no estimate, and a fleet with it in has an unknown total.
    unbounded = CostBasis(state=None, disk_gb=None, max_dph=None)
    assert estimate_instance(unbounded) is None
    total = fleet_cost([CostBasis.of(rented()), unbounded])
    assert total == FleetCost(known=None, unknown=1)
    assert total.rounded() == {"hourly": None, "daily": None, "monthly": None}
    assert fleet_cost([CostBasis.of(rented())]).rounded() == {"hourly": 0.4, "daily": 9.6, "monthly": 292.0}


def test_properties_that_are_not_numbers_are_unknown_not_zero() -> None:
    """What the JSON boundary (stack outputs, a preview's steps) may hold: engine sentinels, secrets, nulls."""
    sentinel = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    basis = CostBasis.from_properties({"instance_id": 7, "dph_total": sentinel, "state": "running",
                                       "max_dph": {"secret": "x"}, "quote": {"dph_total": None}})
    assert (basis.actual, basis.quote, basis.max_dph) == (None, None, None)
    assert estimate_instance(basis) is None
    stopped = CostBasis.from_properties({"instance_id": 7, "dph_total": 0.4, "storage_cost": None,
                                         "state": "stopped", "disk_gb": 72, "max_dph": 0.5})
    assert stopped.actual == Rate.of(0.4, None)
    estimate = estimate_instance(stopped)
    assert estimate is not None and estimate.hourly == Decimal("0.4")
