"""OfferQuery: the filter JSON on the wire, proven identical to what the official `vastai` CLI sends."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from fleet import gpus
from tests.client.conftest import Script, json_reply
from tests.client.official import run_official
from vastclient import Offer, OfferQuery, VastClient
from vastclient.query import wire_gpu_name

CASES = [
    OfferQuery(),
    OfferQuery(gpu_names="RTX_4090", num_gpus=1, max_dph=2, min_reliability=0.95),
    OfferQuery(
        gpu_names=["A100 PCIE", "A100_SXM4"],
        num_gpus=8,
        max_dph=12.5,
        verified_only=False,
        geolocation=["US", "SE"],
        disk_gb=120,
        order=[("dph_total", "asc"), ("reliability", "desc")],
        limit=64,
        offer_type="bid",
    ),
    OfferQuery(gpu_names=("H100 SXM",), geolocation="CA", disk_gb=32.5, offer_type="interruptible"),
    OfferQuery(gpu_names="Tesla V100", offer_type="reserved", limit=3, min_reliability=0.9),
    OfferQuery(gpu_names="RTX_3090", max_dph=0.3, max_bid=0.12, disk_gb=32, offer_type="bid",
               order=[("dph_total", "asc")]),
]


def test_a_bid_matches_only_offers_it_wins_with_storage_within_max_dph() -> None:
    query = OfferQuery(max_dph=0.3, max_bid=0.2, disk_gb=72, offer_type="bid")  # 72 GB at 0.1/GB/month: 0.01/h
    def offer(min_bid: float) -> Offer:
        return Offer(id=1, gpu_name="RTX 3090", num_gpus=1, dph_total=min_bid + 0.01, dph_base=min_bid,
                     min_bid=min_bid, storage_cost=0.1, rentable=True)
    assert query.matches(offer(0.15)) and query.bid_total(offer(0.15)) == pytest.approx(0.21)
    assert not query.matches(offer(0.25))  # the bid would not win this machine now
    assert not OfferQuery(max_dph=0.205, max_bid=0.2, disk_gb=72, offer_type="bid").matches(offer(0.15))


def test_defaults_are_the_clis() -> None:
    assert OfferQuery().to_filter() == {
        "verified": {"eq": True},
        "external": {"eq": False},
        "rentable": {"eq": True},
        "order": [["score", "desc"]],
        "type": "on-demand",
        "allocated_storage": 5.0,
    }


def test_the_documented_example() -> None:
    """vastai-api.md: `gpu_name=RTX_4090 num_gpus>=1 dph_total<=2 reliability>0.95`, minus the operators
    OfferQuery chooses differently (num_gpus is exact, reliability a minimum)."""
    q = OfferQuery(gpu_names="RTX_4090", num_gpus=1, max_dph=2.0, min_reliability=0.95).to_filter()
    assert q["gpu_name"] == {"eq": "RTX 4090"}
    assert q["num_gpus"] == {"eq": "1"}
    assert q["dph_total"] == {"lte": "2"}
    assert q["reliability"] == {"gte": "0.95"}
    assert list(q)[:3] == ["verified", "external", "rentable"]


def test_family_goes_in_with_spaces() -> None:
    known = ["A100 PCIE", "A100 SXM4", "A1000", "RTX 4090"]
    q = OfferQuery(gpu_names=gpus.resolve("a100", known))
    assert q.to_filter()["gpu_name"] == {"in": ["A100 PCIE", "A100 SXM4"]}


@pytest.mark.parametrize(
    ("name", "wire"), [("RTX_4090", "RTX 4090"), ("H100  SXM", "H100 SXM"), ("Tesla_V100", "Tesla V100")]
)
def test_wire_spelling_is_normalize_compatible(name: str, wire: str) -> None:
    assert wire_gpu_name(name) == wire
    assert gpus.normalize(wire) == gpus.normalize(name)


def test_duplicates_collapse_and_bad_values_are_refused() -> None:
    assert OfferQuery(gpu_names=["RTX_4090", "RTX 4090"]).gpu_names == ("RTX 4090",)
    with pytest.raises(ValidationError):
        OfferQuery(gpu_names=["  "])
    with pytest.raises(ValidationError):
        OfferQuery(geolocation=["US, CA"])
    with pytest.raises(ValidationError):
        OfferQuery(min_reliability=1.5)
    with pytest.raises(ValidationError):
        OfferQuery(max_dph=0)
    with pytest.raises(ValidationError):
        OfferQuery(order=[("score", "down")])
    with pytest.raises(ValidationError):
        OfferQuery(gpu_name="RTX 4090")  # type: ignore[call-arg]


def test_interruptible_is_bid_and_disk_is_priced_and_required() -> None:
    q = OfferQuery(offer_type="interruptible", disk_gb=40).to_filter()
    assert q["type"] == "bid"
    assert q["allocated_storage"] == 40.0
    assert q["disk_space"] == {"gte": "40"}


def _offer(**fields: object) -> Offer:
    base: dict[str, object] = {
        "id": 1,
        "gpu_name": "RTX 4090",
        "num_gpus": 1,
        "dph_total": 0.5,
        "reliability2": 0.99,
        "verification": "verified",
        "rentable": True,
        "geolocation": "Oregon, US",
        "disk_space": 100,
    }
    base.update(fields)
    return Offer.model_validate(base)


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({}, True),
        ({"gpu_name": "RTX 3090"}, False),
        ({"gpu_name": "rtx 4090"}, True),
        ({"num_gpus": 2}, False),
        ({"dph_total": 0.61}, False),
        ({"reliability2": 0.9}, False),
        ({"reliability2": None}, False),
        ({"verification": "unverified"}, False),
        ({"rentable": False}, False),
        ({"geolocation": "Quebec, CA"}, False),
        ({"geolocation": None}, False),
        ({"geolocation": "US"}, True),
        ({"disk_space": 10}, False),
    ],
)
def test_matches_rechecks_what_vast_may_have_ignored(fields: dict[str, object], ok: bool) -> None:
    q = OfferQuery(gpu_names="RTX_4090", num_gpus=1, max_dph=0.6, min_reliability=0.95, geolocation="US", disk_gb=50)
    assert q.matches(_offer(**fields)) is ok


def test_cli_args_read_like_a_person_would_type_them() -> None:
    assert CASES[1].to_cli_args() == [
        "search", "offers", "gpu_name=RTX_4090 num_gpus=1 dph_total<=2 reliability>=0.95",
        "--type", "on-demand", "--storage", "5.0", "-o", "score-",
    ]  # fmt: skip


# -- conformance with the official CLI -------------------------------------------------------------------

_RUN_OFFICIAL_CLI = """
import json, sys
argvs, url = json.loads(sys.argv[1]), sys.argv[2]
from vastai.cli import main as cli   # the official package: run from a directory without ours on sys.path
sys.argv = ["vastai", "--version"]
try:
    cli.main()                       # builds the parser, then exits on --version
except SystemExit:
    pass
for argv in argvs:
    args = cli.parser.parse_args(["--url", url, "--api-key", "k", "--raw", *argv])
    try:
        cli.run_command(args)
    except SystemExit:
        pass
"""


@pytest.fixture(scope="module")
def recording_server() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, obj: object) -> None:
            data = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply({"gpu_names": ["RTX 4090"]} if "gpu_names" in self.path else {"id": 1})

        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self._reply({"offers": []})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", bodies
    server.shutdown()
    server.server_close()
    thread.join()


def test_official_cli_sends_the_same_bytes(
    recording_server: tuple[str, list[bytes]],
    tmp_path: Path,
    script: Script,
    make_client: Callable[..., VastClient],
) -> None:
    url, bodies = recording_server
    argvs = [q.to_cli_args() for q in CASES]
    out = run_official(_RUN_OFFICIAL_CLI, json.dumps(argvs), url, scratch=tmp_path, extra_env={"VAST_URL": url})
    assert len(bodies) == len(CASES), out

    script.on("POST /api/v0/bundles/", json_reply(200, {"offers": []}))
    client = make_client()
    for query in CASES:
        client.search_offers(query)
    ours = [r.content for r in script.calls("POST /api/v0/bundles/")]
    for query, official, mine in zip(CASES, bodies, ours, strict=True):
        assert mine == official, query
        assert json.loads(mine) == query.to_filter()
