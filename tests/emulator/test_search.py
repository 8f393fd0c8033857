"""Search semantics (`POST /api/v0/bundles/`), checked against brute force over the catalogue."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from emulator.catalogue import Offer
from emulator.errors import InvalidArgs
from emulator.models import MarketBackend
from emulator.query import numeric_version, parse_search
from emulator.views import offer_row
from tests.emulator.helpers import account, make_market, rent, search

CLI_DEFAULTS: dict[str, Any] = {"verified": {"eq": True}, "external": {"eq": False}, "rentable": {"eq": True}}


@pytest.fixture
def market() -> MarketBackend:
    return make_market(seed=21, default_search_limit=10_000)


def ids(market: MarketBackend, body: dict[str, Any]) -> set[int]:
    acct = account(market)
    return {q.offer.id for q in search(market, acct, body)}


def listed(market: MarketBackend) -> list[Offer]:
    return [o for o in market.state.offers.values() if o.id not in market.state.taken]


def test_cli_style_query_matches_brute_force(market: MarketBackend) -> None:
    body = {**CLI_DEFAULTS, "gpu_name": {"eq": "RTX 4090"}, "num_gpus": {"gte": "1"},
            "dph_total": {"lte": "2"}, "reliability": {"gt": "0.95"}, "order": [["score", "desc"]],
            "type": "on-demand", "allocated_storage": 5.0}
    expected = {o.id for o in listed(market)
                if o.verification == "verified" and not o.external and o.rentable and o.gpu_name == "RTX 4090"
                and o.num_gpus >= 1 and float(o.dph_base + o.storage_cost * 5 / 720) <= 2 and o.reliability > 0.95}
    assert expected
    assert ids(market, body) == expected


@pytest.mark.parametrize("spelling", ["RTX 4090", "RTX_4090", "rtx 4090", " RTX  4090 "])
def test_gpu_name_spaces_underscores_and_case(market: MarketBackend, spelling: str) -> None:
    assert ids(market, {"gpu_name": {"eq": spelling}}) == {
        o.id for o in listed(market) if o.gpu_name == "RTX 4090" and o.rentable}


def test_mixed_case_marketplace_names_match(market: MarketBackend) -> None:
    assert ids(market, {"gpu_name": {"eq": "TESLA_V100"}}) == {
        o.id for o in listed(market) if o.gpu_name == "Tesla V100" and o.rentable}


@pytest.mark.parametrize(("op", "value", "check"), [
    ("eq", "2", lambda n: n == 2),
    ("neq", 2, lambda n: n != 2),
    ("gt", "2", lambda n: n > 2),
    ("gte", 4, lambda n: n >= 4),
    ("lt", "4", lambda n: n < 4),
    ("lte", 2.0, lambda n: n <= 2),
    ("in", ["1", 8], lambda n: n in (1, 8)),
    ("notin", [1, "2"], lambda n: n not in (1, 2)),
])
def test_each_operator_with_numeric_string_coercion(market: MarketBackend, op: str, value: Any,
                                                    check: Any) -> None:
    got = ids(market, {"num_gpus": {op: value}})
    assert got == {o.id for o in listed(market) if o.rentable and check(o.num_gpus)}
    assert got  # the case exercises something


def test_several_operators_on_one_field_are_anded(market: MarketBackend) -> None:
    assert ids(market, {"num_gpus": {"gte": "2", "lte": "4"}}) == {
        o.id for o in listed(market) if o.rentable and 2 <= o.num_gpus <= 4}


def test_booleans_and_their_string_spellings(market: MarketBackend) -> None:
    verified = {o.id for o in listed(market) if o.rentable and o.verification == "verified"}
    assert ids(market, {"verified": {"eq": True}}) == verified
    assert ids(market, {"verified": {"eq": "true"}}) == verified
    unverified = ids(market, {"verified": {"eq": False}})
    assert unverified and not unverified & verified


def test_null_matches_missing_with_eq_and_present_with_neq(market: MarketBackend) -> None:
    every = {o.id for o in listed(market) if o.rentable}
    assert ids(market, {"gpu_name": {"neq": None}}) == every
    assert ids(market, {"gpu_name": {"eq": None}}) == set()


def test_rentable_true_applies_when_absent_and_false_finds_the_unrentable(market: MarketBackend) -> None:
    unrentable = {o.id for o in listed(market) if not o.rentable}
    assert unrentable, "the catalogue should hold a few unrentable offers"
    assert not ids(market, {}) & unrentable
    assert ids(market, {"rentable": {"eq": False}}) == unrentable


def test_external_and_verification_text(market: MarketBackend) -> None:
    assert ids(market, {"external": {"eq": True}}) == {o.id for o in listed(market) if o.rentable and o.external}
    assert ids(market, {"verification": {"in": ["deverified"]}}) == {
        o.id for o in listed(market) if o.rentable and o.verification == "deverified"}


def test_geolocation_by_country_code_or_full_place(market: MarketBackend) -> None:
    us = {o.id for o in listed(market) if o.rentable and o.geolocation.endswith(", US")}
    assert ids(market, {"geolocation": {"eq": "US"}}) == us
    assert ids(market, {"geolocation": {"eq": "us"}}) == us
    assert ids(market, {"geolocation": {"in": ["SE", "NO"]}}) == {
        o.id for o in listed(market) if o.rentable and o.geolocation[-2:] in ("SE", "NO")}
    assert ids(market, {"geolocation": {"notin": ["US"]}}) == {o.id for o in listed(market) if o.rentable} - us
    assert ids(market, {"geolocation": {"eq": "Oregon, US"}}) == {
        o.id for o in listed(market) if o.rentable and o.geolocation == "Oregon, US"}


def test_driver_version_compares_as_the_cli_encodes_it(market: MarketBackend) -> None:
    assert numeric_version("535.86.05") == 535086005
    newer = {o.id for o in listed(market) if o.rentable and (numeric_version(o.driver_version) or 0) >= 560035003}
    assert ids(market, {"driver_version": {"gte": "560.35.03"}}) == newer
    assert ids(market, {"driver_version": {"gte": 560035003}}) == newer


def test_order_default_score_desc_and_explicit_orders(market: MarketBackend) -> None:
    acct = account(market)
    default = search(market, acct, {})
    scores = [q.offer.score for q in default]
    assert scores == sorted(scores, reverse=True)
    cheap = search(market, acct, {"order": [["dph_total", "asc"]]})
    totals = [q.dph_total for q in cheap]
    assert totals == sorted(totals)
    two_keys = search(market, acct, {"order": [["num_gpus", "desc"], ["dph_total", "asc"]]})
    keys = [(-q.offer.num_gpus, q.dph_total) for q in two_keys]
    assert keys == sorted(keys)


def test_limit_and_default_limit() -> None:
    market = make_market(seed=21)
    acct = account(market)
    assert len(search(market, acct, {})) == 64  # Vast returns a page, not everything
    assert len(search(market, acct, {"limit": "5"})) == 5


def test_dph_total_prices_the_allocated_storage(market: MarketBackend) -> None:
    acct = account(market)
    for storage in (None, 16, "40.5"):
        body: dict[str, Any] = {"limit": 20}
        if storage is not None:
            body["allocated_storage"] = storage
        gb = Decimal(str(storage if storage is not None else 5.0))
        for q in search(market, acct, body):
            assert q.dph_total == q.offer.dph_base + q.offer.storage_cost * gb / 720
            row = offer_row(q, 0.0)
            assert row["dph_total"] == float(q.offer.dph_base + q.offer.storage_cost * gb / 720)
            assert row["dph_base"] == float(q.offer.dph_base)


def test_offers_that_cannot_hold_the_storage_are_not_listed(market: MarketBackend) -> None:
    small = min(o.disk_space for o in listed(market) if o.rentable)
    got = ids(market, {"allocated_storage": small + 0.5})
    assert got and all(market.state.offers[i].disk_space >= small + 0.5 for i in got)


def test_bid_type_prices_at_min_bid(market: MarketBackend) -> None:
    acct = account(market)
    quotes = search(market, acct, {"type": "bid", "limit": 10})
    assert quotes
    for q in quotes:
        row = offer_row(q, 0.0)
        assert q.is_bid and row["is_bid"] is True
        assert row["dph_base"] == float(q.offer.min_bid)
    assert search(market, acct, {"type": "interruptible", "limit": 3})[0].is_bid


def test_rented_offers_leave_and_destroyed_ones_return(market: MarketBackend) -> None:
    acct = account(market)
    target = search(market, acct, {"gpu_name": {"eq": "H100 SXM"}})[0].offer.id
    inst = rent(market, acct, target)
    other = account(market)
    assert target not in ids(market, {})
    assert target not in {q.offer.id for q in search(market, other, {"limit": 10_000})}
    market.destroy_instance(acct, inst.id)
    assert target in ids(market, {})


def test_unknown_fields_are_dropped_like_vast_unless_strict(market: MarketBackend) -> None:
    acct = account(market)
    result = market.search_offers(acct, parse_search({"gpu_nmae": {"eq": "RTX 4090"}, "limit": 5}))
    assert result.ignored == ["gpu_nmae"]
    assert len(result.quotes) == 5  # the misspelt filter did nothing
    market.state.config.strict_search = True
    with pytest.raises(InvalidArgs, match="gpu_nmae"):
        market.search_offers(acct, parse_search({"gpu_nmae": {"eq": "RTX 4090"}}))


@pytest.mark.parametrize(("body", "fragment"), [
    ([1, 2], "JSON object"),
    ({"num_gpus": 2}, "operator object"),
    ({"num_gpus": {"between": [1, 2]}}, "unknown operator"),
    ({"num_gpus": {"gte": "lots"}}, "is a number"),
    ({"num_gpus": {"gte": True}}, "boolean"),
    ({"num_gpus": {"in": 2}}, "needs a list"),
    ({"gpu_name": {"gt": "RTX"}}, "only compares numbers"),
    ({"verified": {"eq": "maybe"}}, "true or false"),
    ({"num_gpus": {"gte": None}}, "not null"),
    ({"gpu_name": {"eq": {"x": 1}}}, "is text"),
    ({"type": "spot"}, "type must be"),
    ({"limit": 0}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"allocated_storage": -1}, "allocated_storage"),
    ({"allocated_storage": "nan"}, "allocated_storage"),
    ({"order": "score"}, "order"),
    ({"order": [["score", "up"]]}, "order entry"),
])
def test_malformed_searches_are_400s_naming_the_problem(body: Any, fragment: str) -> None:
    with pytest.raises(InvalidArgs, match=fragment):
        parse_search(body)
