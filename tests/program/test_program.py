"""The fleet program under Pulumi mocks: what it declares, what it exports, and how it refuses bad fleets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

from fleet.instance import INSTANCE_TYPE

FLEET = {
    "train": {"gpu": "RTX_4090", "count": 2, "image": "pytorch/pytorch:2", "max_dph": 0.6, "disk_gb": 36},
    "eval": {"gpu": "A100", "count": 1, "image": "pytorch/pytorch:2", "max_dph": 1.9, "state": "stopped"},
}


class FleetMocks(Mocks):
    def __init__(self) -> None:
        self.resources: list[MockResourceArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(args)
        state = dict(args.inputs)
        if args.typ != INSTANCE_TYPE:
            return f"{args.name}-id", state
        state.update(instance_id=len(self.resources), dph_total=0.5, storage_cost=0.1, status=state["state"])
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def configure(stack: str, team: Any, fleet: Any) -> FleetMocks:
    mocks = FleetMocks()
    pulumi.runtime.set_mocks(mocks, project="vastguard", stack=stack, preview=False)
    config = {"vastguard:team": team, "vastguard:fleet": json.dumps(fleet)}
    pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    return mocks


@pytest.fixture(autouse=True)
def _reset_config() -> Iterator[None]:
    yield
    pulumi.runtime.set_all_config({})


@pulumi.runtime.test  # type: ignore[untyped-decorator]
def test_declares_one_resource_per_instance_with_ownership_tags() -> Any:
    mocks = configure("ml-engineering", "ml-engineering", FLEET)
    from program.fleet_program import run

    instances = run()

    def check(_: Any) -> None:
        instances = [r for r in mocks.resources if r.typ == INSTANCE_TYPE]
        assert sorted(r.name for r in instances) == ["eval-0", "train-0", "train-1"]
        train = next(r for r in instances if r.name == "train-1")
        assert train.inputs["gpu_name"] == "RTX_4090"
        assert train.inputs["ownership_tag"] == "vg:ml-engineering/train-1"
        assert train.inputs["team"] == "ml-engineering"
        assert "__provider" in train.inputs
        # The pickled provider carries no key and no client.
        assert "apiKey" not in str(train.inputs["__provider"])

    return pulumi.Output.all(*[i.urn for i in instances.values()]).apply(check)


def test_invalid_fleet_names_stack_group_and_field() -> None:
    configure("data-science", "data-science", {"notebook": {"gpu": "RTX_3090", "image": "x", "max_dph": 0, "cnt": 1}})
    from program.fleet_program import run

    with pytest.raises(pulumi.RunError) as err:
        run()
    text = str(err.value)
    assert "stack 'data-science'" in text
    assert "group 'notebook', field 'max_dph'" in text
    assert "group 'notebook', field 'cnt': unknown field" in text
