"""The models take Vast's JSON as it really comes: extra fields, numbers as strings, nulls, list-shaped env."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from vastclient import Charge, Instance, Offer, User

OFFER_ROW = {
    "id": "4242",
    "ask_contract_id": 4242,
    "machine_id": "17",
    "host_id": 3,
    "gpu_name": "RTX 4090",
    "num_gpus": "2.0",
    "gpu_ram": "24564",
    "cpu_ram": 64000,
    "disk_space": "512.5",
    "dph_base": "0.70",
    "dph_total": "0.7123",
    "min_bid": None,
    "storage_cost": "0.15",
    "reliability2": "0.991",
    "rentable": 1,
    "rented": "false",
    "verification": "verified",
    "geolocation": "Oregon, US",
    "cuda_max_good": "12.4",
    "driver_version": "550.54.14",
    "score": "",
    "brand_new_field": {"nested": [1, 2]},
}


def test_offer_coerces_vast_quirks() -> None:
    offer = Offer.model_validate(OFFER_ROW)
    assert (offer.id, offer.machine_id, offer.num_gpus) == (4242, 17, 2)
    assert offer.dph_total == pytest.approx(0.7123)
    assert offer.disk_space == pytest.approx(512.5)
    assert offer.reliability == pytest.approx(0.991)  # from reliability2
    assert offer.rentable is True and offer.rented is False
    assert offer.min_bid is None and offer.score is None  # null and "" both mean unknown
    assert offer.verified
    assert not hasattr(offer, "brand_new_field")


def test_plain_reliability_wins_over_reliability2() -> None:
    assert Offer.model_validate({**OFFER_ROW, "reliability": 0.5}).reliability == 0.5


@pytest.mark.parametrize("missing", ["id", "gpu_name", "num_gpus", "dph_total"])
def test_offer_fields_we_rely_on_are_required(missing: str) -> None:
    row = {k: v for k, v in OFFER_ROW.items() if k != missing}
    with pytest.raises(ValidationError):
        Offer.model_validate(row)


@pytest.mark.parametrize("bad", [{"num_gpus": "2.5"}, {"dph_total": "cheap"}, {"id": None}])
def test_offer_rejects_what_cannot_be_coerced(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Offer.model_validate({**OFFER_ROW, **bad})


INSTANCE_ROW = {
    "id": 901,
    "actual_status": "running",
    "intended_status": "running",
    "label": "train [vg:dev/a]",
    "machine_id": "17",
    "gpu_name": "RTX 4090",
    "num_gpus": 1,
    "dph_total": "0.71",
    "start_date": "1800000000.5",
    "ssh_port": "40022",
    "extra_env": [["HF_HOME", "/data"], ["-p 8080:8080", "1"], ["EMPTY", None]],
    "is_bid": False,
    "whatever": "ignored",
}


def test_instance_coerces_vast_quirks() -> None:
    inst = Instance.model_validate(INSTANCE_ROW)
    assert inst.extra_env == {"HF_HOME": "/data", "-p 8080:8080": "1", "EMPTY": ""}
    assert inst.ssh_port == 40022 and inst.machine_id == 17
    assert inst.start_date == pytest.approx(1800000000.5)
    assert Instance.model_validate({**INSTANCE_ROW, "extra_env": None}).extra_env == {}
    assert Instance.model_validate({**INSTANCE_ROW, "extra_env": {"A": "b"}}).extra_env == {"A": "b"}
    with pytest.raises(ValidationError):
        Instance.model_validate({**INSTANCE_ROW, "extra_env": [["only-a-key"]]})


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        (None, "pending"),
        ("created", "pending"),
        ("loading", "pending"),
        ("rebooting", "pending"),
        ("something_new", "pending"),
        ("running", "running"),
        ("stopped", "stopped"),
        ("frozen", "stopped"),
        ("exited", "failed"),
        ("unknown", "failed"),
        ("offline", "failed"),
    ],
)
def test_instance_phase(status: str | None, phase: str) -> None:
    assert Instance(id=1, actual_status=status).phase == phase


CHARGE_ROW = {
    "start": 1800000000,
    "end": "1800003600",
    "type": "instance",
    "source": "instance-901",
    "description": "RTX 4090 instance",
    "amount": 0.7123,
    "metadata": {"label": "train [vg:dev/a]", "template_id": None, "other": 1},
    "items": [
        {"type": "gpu", "amount": "0.70", "description": "GPU", "start": 1800000000, "end": 1800003600},
        {"type": "disk", "amount": 0.0123, "items": None},
        {"type": "bwd", "amount": "0"},
    ],
}


def test_charge_amounts_are_decimal_and_items_nest() -> None:
    charge = Charge.model_validate(CHARGE_ROW)
    assert charge.amount == Decimal("0.7123")
    assert [i.amount for i in charge.items] == [Decimal("0.70"), Decimal("0.0123"), Decimal("0")]
    assert charge.items[1].items == []
    assert charge.metadata.label == "train [vg:dev/a]"
    assert charge.instance_id == 901
    assert charge.end == 1800003600.0


def test_charge_quirks() -> None:
    bare = Charge.model_validate(
        {"type": "volume", "amount": "1.5", "source": "volume-7", "metadata": None, "items": None}
    )
    assert bare.instance_id is None and bare.items == [] and bare.metadata.label is None
    assert Charge.model_validate({**CHARGE_ROW, "source": "instance-abc"}).instance_id is None
    with pytest.raises(ValidationError):
        Charge.model_validate({**CHARGE_ROW, "amount": None})  # unknown is not zero


def test_user_never_holds_the_api_key() -> None:
    user = User.model_validate(
        {"id": "7", "email": "a@b.c", "username": "a", "balance": "12.5", "credit": 3, "has_billing": True,
         "api_key": "vk-should-vanish", "balance_threshold": None}
    )  # fmt: skip
    assert user.balance == Decimal("12.5") and user.credit == Decimal("3")
    assert "vk-should-vanish" not in repr(user) + str(user.model_dump())
