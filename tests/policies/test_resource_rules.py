"""Resource rules, called directly with the SDK's args: pass, fail, unknown at preview, families, exceptions."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from policies import rules
from policies.names import RuleName
from policies.report import pattern
from tests.policies.fakes import (
    TODAY,
    UNKNOWN_NUMBER,
    UNKNOWN_STRING,
    block,
    collect,
    inputs,
    messages,
    quote,
    resource_args,
)

ACTIVE = {"reason": "benchmark sprint", "approver": "platform-lead", "expires": "2026-06-30"}
EXPIRED = {"reason": "old sprint", "approver": "platform-lead", "expires": "2026-06-14"}


def run(rule: RuleName, props: dict[str, Any], *, team: str = "ml-engineering", stack: str | None = None,
        today: date = TODAY, **config: Any) -> list[str]:
    args = resource_args(props, block(team, rule, **config), stack=stack or team)
    return messages(collect(rules.RULES_BY_NAME[rule].validate, args, today=today))


# -- GPU allow-list -------------------------------------------------------------------------------------------


def test_allowed_gpu_passes_in_either_spelling() -> None:
    assert run(RuleName.GPU_ALLOW_LIST, inputs(gpu_name="RTX_4090")) == []
    assert run(RuleName.GPU_ALLOW_LIST, inputs(gpu_name="rtx 4090")) == []


def test_gpu_off_the_list_is_denied_with_team_value_limit_and_way_out() -> None:
    found = run(RuleName.GPU_ALLOW_LIST, inputs(gpu_name="H100 SXM", quote=quote("H100 SXM", 2.0)))
    assert found[0] == ("ml-engineering: train-0: GPU H100 SXM is not on the team's GPU allow-list "
                        "[RTX 4090, A100]; use one of those or request a policy change")
    assert pattern(RuleName.GPU_ALLOW_LIST, "quoted", value="H100 SXM").search(found[1])
    assert len(found) == 2


def test_allow_list_family_covers_its_members_but_not_a_longer_model_number() -> None:
    assert run(RuleName.GPU_ALLOW_LIST, inputs(gpu_name="A100 SXM4", quote=quote("A100 SXM4", 1.2))) == []
    assert run(RuleName.GPU_ALLOW_LIST, inputs(gpu_name="A100", quote=quote("A100 PCIE", 1.1))) == []
    found = run(RuleName.GPU_ALLOW_LIST, inputs(gpu_name="A1000", quote=quote("A1000", 0.2)))
    assert pattern(RuleName.GPU_ALLOW_LIST, "not-allowed", value="A1000").search(found[0])


def test_declared_family_broader_than_the_allow_list_is_denied() -> None:
    """Allowing only A100 SXM4 must not let `gpu_name: A100` rent an A100 PCIE."""
    found = run(RuleName.GPU_ALLOW_LIST, inputs(gpu_name="A100", quote=quote("A100 SXM4", 1.2)),
                allowed_gpus=["A100_SXM4"])
    assert found == [
        "ml-engineering: train-0: GPU family A100 could rent models outside the team's GPU allow-list "
        "[A100 SXM4]; name an allowed model or request a policy change"
    ]


def test_quote_outside_the_list_is_denied_even_when_the_declared_name_passes() -> None:
    found = run(RuleName.GPU_ALLOW_LIST, inputs(gpu_name="RTX 4090", quote=quote("RTX 5090", 0.6)))
    assert len(found) == 1
    assert pattern(RuleName.GPU_ALLOW_LIST, "quoted", team="ml-engineering", value="RTX 5090").search(found[0])


def test_unknown_gpu_at_preview_is_the_worst_case_any_gpu() -> None:
    found = run(RuleName.GPU_ALLOW_LIST, inputs(gpu_name=UNKNOWN_STRING, quote=UNKNOWN_STRING))
    assert len(found) == 1
    assert pattern(RuleName.GPU_ALLOW_LIST, "unknown", resource="train-0").search(found[0])


def test_gpu_exception_allows_that_model_until_it_expires() -> None:
    grant = {"allow": "H100_SXM", **ACTIVE}
    props = inputs(gpu_name="H100 SXM", quote=quote("H100 SXM", 2.0))
    assert run(RuleName.GPU_ALLOW_LIST, props, exceptions=[grant]) == []
    assert len(run(RuleName.GPU_ALLOW_LIST, props, exceptions=[grant], today=date(2026, 7, 1))) == 2


def test_an_exception_relaxes_only_its_own_value() -> None:
    grant = {"allow": "H100 SXM", **ACTIVE}
    found = run(RuleName.GPU_ALLOW_LIST, inputs(gpu_name="H200", quote=quote("H200", 3.0)), exceptions=[grant])
    assert len(found) == 2


# -- $/h cap --------------------------------------------------------------------------------------------------


def test_max_dph_and_quote_within_the_cap_pass() -> None:
    assert run(RuleName.INSTANCE_MAX_DPH, inputs(max_dph=2.0, quote=quote(dph_total=1.99))) == []


def test_max_dph_above_the_cap_is_denied() -> None:
    found = run(RuleName.INSTANCE_MAX_DPH, inputs(max_dph=2.5, quote=quote(dph_total=1.0)))
    assert found == [
        "ml-engineering: train-0: max_dph $2.50/h exceeds the team's per-instance cap $2.00/h; "
        "lower max_dph in stacks/Pulumi.ml-engineering.yaml or request an exception"
    ]


def test_quote_above_the_cap_is_denied() -> None:
    found = run(RuleName.INSTANCE_MAX_DPH, inputs(max_dph=1.5, quote=quote(dph_total=2.1)),
                max_dph=1.0)
    assert [bool(pattern(RuleName.INSTANCE_MAX_DPH, key).search(m)) for key, m in zip(("max-dph", "quote"), found,
                                                                                        strict=True)] == [True, True]


def test_unknown_max_dph_at_preview_is_unbounded_and_denied() -> None:
    found = run(RuleName.INSTANCE_MAX_DPH, inputs(max_dph=UNKNOWN_NUMBER, quote=None))
    assert len(found) == 1
    assert pattern(RuleName.INSTANCE_MAX_DPH, "unknown", limit="$2.00").search(found[0])


def test_missing_or_unknown_quote_falls_back_to_max_dph() -> None:
    assert run(RuleName.INSTANCE_MAX_DPH, inputs(max_dph=1.9, quote=None)) == []
    assert run(RuleName.INSTANCE_MAX_DPH, inputs(max_dph=1.9, quote={**quote(), "dph_total": UNKNOWN_NUMBER})) == []
    assert len(run(RuleName.INSTANCE_MAX_DPH, inputs(max_dph=2.1, quote=UNKNOWN_STRING))) == 1


def test_dph_exception_raises_the_cap_while_active() -> None:
    grant = {"allow": 3.0, **ACTIVE}
    props = inputs(max_dph=2.8, quote=quote(dph_total=2.5))
    assert run(RuleName.INSTANCE_MAX_DPH, props, exceptions=[grant]) == []
    expired = {"allow": 3.0, **EXPIRED}
    assert len(run(RuleName.INSTANCE_MAX_DPH, props, exceptions=[expired])) == 2


# -- host reliability, verified hosts ---------------------------------------------------------------------------


def test_reliability_at_the_minimum_passes_and_the_default_minimum_is_095() -> None:
    assert run(RuleName.HOST_MIN_RELIABILITY, inputs(min_reliability=0.95)) == []
    found = run(RuleName.HOST_MIN_RELIABILITY, inputs(min_reliability=0.9))
    assert found == [
        "ml-engineering: train-0: min_reliability 0.9 is below the team's minimum host reliability 0.95; "
        "set min_reliability to at least 0.95 or request an exception"
    ]


def test_missing_reliability_means_the_contract_default() -> None:
    props = inputs()
    del props["min_reliability"]
    assert run(RuleName.HOST_MIN_RELIABILITY, props) == []
    assert len(run(RuleName.HOST_MIN_RELIABILITY, props, min_reliability=0.99)) == 1


def test_unknown_reliability_is_worst_case_zero() -> None:
    found = run(RuleName.HOST_MIN_RELIABILITY, inputs(min_reliability=UNKNOWN_NUMBER))
    assert pattern(RuleName.HOST_MIN_RELIABILITY, "unknown").search(found[0])


def test_reliability_exception_lowers_the_floor() -> None:
    grant = {"allow": 0.9, **ACTIVE}
    assert run(RuleName.HOST_MIN_RELIABILITY, inputs(min_reliability=0.9), exceptions=[grant]) == []


def test_unverified_hosts_are_denied_unless_allowed() -> None:
    assert run(RuleName.VERIFIED_HOSTS_ONLY, inputs(verified_only=True)) == []
    found = run(RuleName.VERIFIED_HOSTS_ONLY, inputs(verified_only=False))
    assert pattern(RuleName.VERIFIED_HOSTS_ONLY, "unverified", value="false").search(found[0])
    assert run(RuleName.VERIFIED_HOSTS_ONLY, inputs(verified_only=False), allow_unverified=True) == []
    grant = {"allow": True, **ACTIVE}
    assert run(RuleName.VERIFIED_HOSTS_ONLY, inputs(verified_only=False), exceptions=[grant]) == []


def test_unknown_verified_flag_is_worst_case_unverified() -> None:
    found = run(RuleName.VERIFIED_HOSTS_ONLY, inputs(verified_only="1c4a061d-8072-4f0a-a4cb-0ff528b18fe7"))
    assert pattern(RuleName.VERIFIED_HOSTS_ONLY, "unverified", value="unknown at preview").search(found[0])


# -- images, disk ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("image", [
    "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime",
    "docker.io/pytorch/pytorch@sha256:" + "0123abcd" * 8,
    "nvcr.io/nvidia/pytorch:24.01-py3",
    "vastai/base-image:cuda-12.1",
])
def test_images_from_allowed_registries_pass(image: str) -> None:
    assert run(RuleName.IMAGE_ALLOWED_REGISTRIES, inputs(image=image)) == []


@pytest.mark.parametrize("image", ["pytorch/pytorch-miner:latest", "ghcr.io/someone/miner:1", "nvcr.io/other/x"])
def test_images_from_elsewhere_are_denied(image: str) -> None:
    found = run(RuleName.IMAGE_ALLOWED_REGISTRIES, inputs(image=image))
    expected = pattern(RuleName.IMAGE_ALLOWED_REGISTRIES, "not-allowed", value=image, team="ml-engineering")
    assert expected.search(found[0])


def test_unknown_image_is_denied_and_an_exception_allows_one_repository() -> None:
    assert len(run(RuleName.IMAGE_ALLOWED_REGISTRIES, inputs(image=UNKNOWN_STRING))) == 1
    grant = {"allow": "ghcr.io/acme/trainer", **ACTIVE}
    assert run(RuleName.IMAGE_ALLOWED_REGISTRIES, inputs(image="ghcr.io/acme/trainer:v3"), exceptions=[grant]) == []


def test_disk_within_and_above_the_maximum() -> None:
    assert run(RuleName.DISK_MAX_SIZE, inputs(disk_gb=250)) == []
    found = run(RuleName.DISK_MAX_SIZE, inputs(disk_gb=400))
    assert found == [
        "ml-engineering: train-0: disk_gb 400 exceeds the team's maximum disk of 250 GB; "
        "lower disk_gb in stacks/Pulumi.ml-engineering.yaml or request an exception"
    ]
    assert len(run(RuleName.DISK_MAX_SIZE, inputs(disk_gb=UNKNOWN_NUMBER))) == 1
    assert run(RuleName.DISK_MAX_SIZE, inputs(disk_gb=400), exceptions=[{"allow": 500, **ACTIVE}]) == []


# -- every resource rule: scope and failing closed ----------------------------------------------------------------

RESOURCE_RULES = [r.name for r in rules.RULES if r.resource is not None]


@pytest.mark.parametrize("rule", RESOURCE_RULES)
def test_other_resource_types_are_not_judged(rule: RuleName) -> None:
    args = resource_args({"message": "hi"}, block(None, rule), type_="pulumi-python:dynamic/vastguard:Probe")
    assert collect(rules.RULES_BY_NAME[rule].validate, args) == []


@pytest.mark.parametrize("rule", RESOURCE_RULES)
def test_no_team_file_denies_and_names_the_file_to_create(rule: RuleName) -> None:
    found = messages(collect(rules.RULES_BY_NAME[rule].validate,
                             resource_args(inputs(team="new-team"), block(None, rule), stack="new-team")))
    assert found == [
        f"stack new-team: no team policy config for {rule}; create policies/teams/new-team.json with "
        "`vastguard team add new-team` and preview with --policy-pack-config policies/teams/new-team.json"
    ]


@pytest.mark.parametrize("rule", RESOURCE_RULES)
def test_a_block_missing_its_limit_or_with_a_typo_denies(rule: RuleName) -> None:
    config = block("ml-engineering", rule, max_dhp=1.0)
    found = messages(collect(rules.RULES_BY_NAME[rule].validate, resource_args(inputs(), config)))
    assert len(found) == 1
    assert pattern(rule, "config-invalid", team="ml-engineering").search(found[0])
    assert "max_dhp: unknown field" in found[0]


def test_a_block_missing_a_required_limit_names_the_field() -> None:
    config = block("ml-engineering", RuleName.INSTANCE_MAX_DPH)
    del config["max_dph"]
    found = messages(collect(rules.instance_max_dph, resource_args(inputs(), config)))
    assert found == [
        "ml-engineering: the vast-instance-max-dph block of policies/teams/ml-engineering.json is invalid: "
        "max_dph: Field required; fix it (see policies/teams/_template.json) and check it with "
        "`vastguard team check policies/teams/ml-engineering.json`"
    ]


def test_today_defaults_to_the_real_date() -> None:
    """The pack passes no date: an exception that expired long ago must not apply."""
    config = block("ml-engineering", RuleName.INSTANCE_MAX_DPH,
                   exceptions=[{"allow": 9.0, "reason": "r", "approver": "a", "expires": "2000-01-01"}])
    found: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    rules.instance_max_dph(resource_args(inputs(max_dph=5.0, quote=None), config), report)
    assert len(found) == 1
