"""Benchmark: what access control costs the emulator per request, on the provider's hot paths.

    python -m bench.access [--requests 2000] [--repeat 5]

The provider's steady traffic is status listings (`GET /api/v1/instances/`), single reads
(`GET /api/v0/instances/{id}/`) and manage calls (`PUT /api/v0/instances/{id}/`). Each is sent through the
emulator's whole request pipeline in process (`EmulatorApp.handle`: route, key, permissions, handler,
serialisation; no sockets, so the network's noise does not hide the difference), interleaved in one run:

- `main`: an account's main key (no document of its own: the check is one `None` test);
- `team`: a scoped deploy key in a team's context (the key's document and the holder's role both checked);
- `constrained`: a team key whose `instance_write` is narrowed to one endpoint with an `id` range.

It prints microseconds per request (minimum over the repeats, CPU time) and each key's ratio to `main`;
`authorize` alone is timed too, to show what the check itself is. Target: `team` (the shape of the keys the
provider runs with, preview and deploy) within 1.05 of `main`; `constrained` is shown beside it (a key with
constraints also gathers the request's parameters).
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Callable
from decimal import Decimal

from emulator.access import ENDPOINTS, authorize
from emulator.bodies import AccountBody, CreateInstanceBody, TeamBody, TeamKeyBody
from emulator.models import EmulatorConfig, MarketBackend
from emulator.responses import Request
from emulator.server import EmulatorApp
from fleet.permissions import PermissionSet

TARGET = 1.05
DEPLOY = PermissionSet.of("instance_read", "instance_write", "misc", "user_read")


def _world() -> tuple[EmulatorApp, dict[str, str], int]:
    market = MarketBackend.fresh(seed=3, offers=200, config=EmulatorConfig(provision_delay=0))
    # Fresh keys per run: a literal key in the source would be a key the secrets sweep finds in every copy of it.
    keys = {name: f"bench-{name}-{secrets.token_hex(12)}" for name in ("main", "team", "constrained")}
    owner = market.create_account(AccountBody(api_key=keys["main"], balance=Decimal(1000))).account
    team = market.seed_team(TeamBody(owner_id=owner.id, team_name="bench", transfer_credit=Decimal(500)))
    market.seed_team_key(team.id, TeamKeyBody(api_key=keys["team"], permissions=DEPLOY.to_wire()))
    offers = iter(sorted(market.state.offers))
    instance = market.create_instance(team, next(offers), CreateInstanceBody(image="x/y", disk=10, label="b")).id
    market.create_instance(owner, next(offers), CreateInstanceBody(image="x/y", disk=10, label="b"))
    market.seed_team_key(team.id, TeamKeyBody(api_key=keys["constrained"], permissions={"api": {
        "instance_read": {}, "instance_write": {"api.instance.manage": {"constraints": {
            "id": {"gte": instance - 10, "lte": instance + 10}}}}}}))
    return EmulatorApp(market, sleep=lambda s: None), keys, instance


def _requests(key: str, instance: int) -> list[Request]:
    auth = {"authorization": f"Bearer {key}"}
    return [Request("GET", "/api/v1/instances/", {"limit": "25"}, auth),
            Request("GET", f"/api/v0/instances/{instance}/", {"owner": "me"}, auth),
            Request("PUT", f"/api/v0/instances/{instance}/", {}, auth, b'{"label": "b"}')]


def _cpu(fn: Callable[[], None]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def measure(requests: int, repeat: int) -> dict[str, float]:
    app, keys, instance = _world()
    own = min(app.market.state.accounts)  # the main key's account: the first one made
    mine = max(i for i, inst in app.market.state.instances.items() if inst.account_id == own)
    targets = {name: mine if name == "main" else instance for name in keys}
    batches = {name: _requests(key, targets[name]) for name, key in keys.items()}
    for name, batch in batches.items():  # every path must succeed, or the timing measures refusals
        for request in batch:
            status = app.handle(request).status
            if status != 200:
                raise SystemExit(f"{name} {request.method} {request.path} -> {status}")
    best = {name: float("inf") for name in batches}
    for _ in range(repeat):
        for name, batch in batches.items():
            def run(batch: list[Request] = batch) -> None:
                for _ in range(requests // len(batch)):
                    for request in batch:
                        app.handle(request)
            best[name] = min(best[name], _cpu(run) / (requests // len(batch) * len(batch)))
    caller = app.market.identify(keys["constrained"], "127.0.0.1")
    endpoint = ENDPOINTS["api.instance.manage"]

    def check() -> None:
        for _ in range(requests):
            authorize(caller, endpoint, lambda: {"id": str(instance)})
    best["authorize"] = min(_cpu(check) for _ in range(repeat)) / requests
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.access", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    best = measure(args.requests, args.repeat)
    ratios = {name: best[name] / best["main"] for name in ("team", "constrained")}
    if args.json:
        print(json.dumps({"us_per_request": {k: v * 1e6 for k, v in best.items()}, "ratios": ratios}))
    else:
        print(f"{'key':<12} {'us/request':>11}  ratio to main")
        for name in ("main", "team", "constrained"):
            ratio = best[name] / best["main"]
            print(f"{name:<12} {best[name] * 1e6:>11.1f}  {ratio:.3f}")
        print(f"{'authorize':<12} {best['authorize'] * 1e6:>11.2f}  (the check alone, constrained key)")
    passed = ratios["team"] <= TARGET
    if not args.json:
        print(f"target: team / main <= {TARGET}: {'pass' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
