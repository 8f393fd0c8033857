"""The permission document (fleet/permissions.py): Vast's wire form in and out, every refusal naming its field,
placeholders filled from key_params, and `exceeds` (what a document grants beyond another)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleet.permissions import CATEGORIES, Constraint, InvalidPermissions, KeyParams, PermissionSet

# Vast's own examples (docs.vast.ai/api-reference/permissions, cli/permissions, guides/teams/teams-roles).
DOCS_EXAMPLES: list[dict[str, Any]] = [
    {"api": {"misc": {}, "user_read": {}, "instance_read": {}, "instance_write": {}, "billing_read": {},
             "billing_write": {}}},
    {"api": {"instance_read": {"api.instance.request_logs": {"constraints": {"id": {"eq": 1227}}}}}},
    {"api": {"instance_read": {"api.instance.request_logs": {"constraints": {"id": {"lte": 2, "gte": 1}}}}}},
    {"api": {"misc": {}, "user_read": {}, "instance_read": {}, "instance_write": {},
             "team_read": {"api.team.members": {}}}},
    {"api": {"instance_read": {"api.instance.show": {"constraints": {"id": {"eq": 1227}}}},
             "instance_write": {"api.instance.destroy": {"constraints": {"id": {"eq": 1227}}},
                                "api.instance.reboot": {"constraints": {"id": {"eq": 1227}}}}}},
]


@pytest.mark.parametrize("doc", DOCS_EXAMPLES)
def test_vasts_own_examples_parse_and_round_trip(doc: dict[str, Any]) -> None:
    parsed = PermissionSet.parse(doc)
    assert parsed.to_wire() == doc
    assert PermissionSet.parse(json.dumps(doc)) == parsed  # the CLI's --permission_file holds the JSON text
    assert PermissionSet.model_validate_json(parsed.model_dump_json()) == parsed  # as the emulator persists it


def test_categories_are_vasts_eleven() -> None:
    assert set(CATEGORIES) == {"instance_read", "instance_write", "user_read", "user_write", "billing_read",
                               "billing_write", "machine_read", "machine_write", "misc", "team_read", "team_write"}
    assert PermissionSet.full().to_wire() == {"api": {c: {} for c in CATEGORIES}}
    assert PermissionSet.of("misc").grants["misc"].whole


@pytest.mark.parametrize(("doc", "field", "says"), [
    ("{not json", "permissions", "not valid JSON"),
    ([], "permissions", "must be a JSON object"),
    ({}, "permissions", 'needs "api"'),
    ({"api": {}, "extra": 1}, "permissions.extra", "unknown key"),
    ({"api": {"instance_red": {}}}, "permissions.api.instance_red", "unknown category"),
    ({"api": {"misc": []}}, "permissions.api.misc", "must be a JSON object"),
    ({"api": {"misc": {"search": {}}}}, "permissions.api.misc.search", "not an endpoint name"),
    ({"api": {"misc": {"api.search.offers": {"limits": {}}}}}, "permissions.api.misc.api.search.offers.limits",
     "unknown key"),
    ({"api": {"instance_read": {"api.instance.show": {"constraints": {"id": {"lt": 3}}}}}},
     "permissions.api.instance_read.api.instance.show.constraints.id.lt", "unknown operator 'lt'"),
    ({"api": {"instance_read": {"api.instance.show": {"constraints": {"id": {}}}}}},
     "permissions.api.instance_read.api.instance.show.constraints.id", "needs an operator"),
    ({"api": {"instance_read": {"api.instance.show": {"constraints": {"id": 3}}}}},
     "permissions.api.instance_read.api.instance.show.constraints.id", "must be a JSON object"),
    ({"api": {"instance_read": {"api.instance.show": {"constraints": {"id": {"lte": "ten"}}}}}},
     "permissions.api.instance_read.api.instance.show.constraints.id.lte", "compares numbers"),
    ({"api": {"instance_read": {"api.instance.show": {"constraints": {"id": {"gte": True}}}}}},
     "permissions.api.instance_read.api.instance.show.constraints.id.gte", "compares numbers"),
    ({"api": {"instance_read": {"api.instance.show": {"constraints": {"id": {"eq": [1, 2]}}}}}},
     "permissions.api.instance_read.api.instance.show.constraints.id.eq", "number, text or true/false"),
    ({"api": {"instance_read": {"api.instance.show": {"constraints": {"id": {"gte": 5, "lte": 1}}}}}},
     "permissions.api.instance_read.api.instance.show.constraints.id", "no value satisfies it"),
    ({"api": {"instance_read": {"api.instance.show": {"constraints": {"bad-name": {"eq": 1}}}}}},
     "permissions.api.instance_read.api.instance.show.constraints.bad-name", "not a parameter name"),
])  # fmt: skip
def test_refusals_name_the_field(doc: Any, field: str, says: str) -> None:
    with pytest.raises(InvalidPermissions) as caught:
        PermissionSet.parse(doc)
    assert caught.value.field == field
    assert says in str(caught.value) and str(caught.value).startswith(field + ":")


def test_placeholders_are_filled_from_key_params() -> None:
    doc = PermissionSet.parse({"api": {"instance_write": {"api.instance.destroy": {
        "constraints": {"id": {"eq": "{instance}"}, "disk": {"lte": "{max_disk}"}}}}}})
    assert doc.placeholders() == {"instance", "max_disk"}
    filled = doc.resolve(KeyParams.parse('{"instance": 1227, "max_disk": 64}').values)
    assert filled.to_wire() == {"api": {"instance_write": {"api.instance.destroy": {
        "constraints": {"id": {"eq": 1227}, "disk": {"lte": 64}}}}}}
    assert not filled.placeholders()
    with pytest.raises(InvalidPermissions, match=r"constraints\.disk\.lte: placeholder \{max_disk\} has no value"):
        doc.resolve({"instance": 1})
    with pytest.raises(InvalidPermissions, match="compares numbers"):
        doc.resolve({"instance": 1, "max_disk": "big"})


@pytest.mark.parametrize(("raw", "networks", "values"), [
    (None, (), {}),
    ("", (), {}),
    ('{"ip_whitelist": ["1.2.3.4", "10.0.0.0/8"]}', ("1.2.3.4/32", "10.0.0.0/8"), {}),
    ({"ip_whitelist": "192.168.1.7", "instance": 5}, ("192.168.1.7/32",), {"instance": 5}),
    ({"ip_whitelist": ["2001:db8::/32"]}, ("2001:db8::/32",), {}),
])  # fmt: skip
def test_key_params_read_both_spellings(raw: Any, networks: tuple[str, ...], values: dict[str, Any]) -> None:
    params = KeyParams.parse(raw)
    assert params.ip_whitelist == networks and params.values == values
    assert KeyParams.parse(params.to_wire()) == params


@pytest.mark.parametrize(("raw", "field"), [
    ("{oops", "key_params"),
    ({"ip_whitelist": ["1.2.3.400"]}, "key_params.ip_whitelist[0]"),
    ({"ip_whitelist": {"a": 1}}, "key_params.ip_whitelist"),
    ({"ip_whitelist": [], "x-y": 1}, "key_params.x-y"),
    ({"instance": [1]}, "key_params.instance"),
])  # fmt: skip
def test_key_params_refusals_name_the_field(raw: Any, field: str) -> None:
    with pytest.raises(InvalidPermissions) as caught:
        KeyParams.parse(raw)
    assert caught.value.field == field


def _c(**ops: Any) -> Constraint:
    return Constraint.parse(ops, "c")


@pytest.mark.parametrize(("inner", "outer", "within"), [
    (_c(eq=5), _c(eq=5), True),
    (_c(eq=5), _c(eq=6), False),
    (_c(eq=5), _c(gte=1, lte=10), True),
    (_c(eq=50), _c(gte=1, lte=10), False),
    (_c(gte=2, lte=8), _c(gte=1, lte=10), True),
    (_c(gte=0, lte=8), _c(gte=1, lte=10), False),
    (_c(gte=2), _c(gte=1, lte=10), False),  # unbounded above
    (_c(gte=1, lte=10), _c(eq=5), False),
])  # fmt: skip
def test_constraint_within(inner: Constraint, outer: Constraint, within: bool) -> None:
    assert inner.within(outer) is within


def test_exceeds_names_what_a_document_grants_beyond_another() -> None:
    preview = PermissionSet.of("instance_read", "misc", "user_read")
    deploy = PermissionSet.of("instance_read", "instance_write", "misc", "user_read")
    assert preview.exceeds(deploy) == []
    assert deploy.exceeds(preview) == ["api.instance_write"]
    assert PermissionSet.full().exceeds(PermissionSet.full()) == []
    one = PermissionSet.parse({"api": {"instance_write": {"api.instance.destroy": {
        "constraints": {"id": {"eq": 7}}}}}})
    range_ = PermissionSet.parse({"api": {"instance_write": {"api.instance.destroy": {
        "constraints": {"id": {"gte": 1, "lte": 9}}}}}})
    assert one.exceeds(range_) == [] and one.exceeds(deploy) == []
    assert range_.exceeds(one) == ["api.instance_write.api.instance.destroy.constraints.id"]
    assert deploy.exceeds(one) == ["api.instance_read", "api.instance_write (all of it; the bound grants only "
                                   "api.instance.destroy)", "api.misc", "api.user_read"]
    other_endpoint = PermissionSet.parse({"api": {"instance_write": {"api.instance.manage": {}}}})
    assert other_endpoint.exceeds(one) == ["api.instance_write.api.instance.manage"]
