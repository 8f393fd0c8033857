"""The benchmark rows: each builds its own emulator and workspace, measures side by side, returns a Result."""

from __future__ import annotations

import json
import math
import secrets
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.guard import guard_pass
from bench.reports import parse_only, reports_pipeline, write_history
from emulator import Account, EmulatorServer
from emulator.bodies import ConfigBody
from emulator.ratelimit import LIMITS as VAST_LIMITS
from engine import Engine, ensure
from fleet.instance import InstanceSpec
from providers import provisioning
from vastclient import VastClient
from vastguard.workspace import POLICY_PACK, Workspace, team_policy_config

TEAM = "ml-research"
GPUS = ("A100", "H100_SXM", "RTX_4090", "RTX_5090", "RTX_3090")  # >= 100 offers each at OFFERS
GROUP = 50  # instances per fleet group (the declaration allows 64)
OFFERS = 8000  # enough of every GPU for 500 distinct rentals
MUTATING = frozenset({"create", "manage", "destroy"})
Log = Callable[[str], None]


@dataclass
class Result:
    row: int
    name: str
    value: float
    target: float
    detail: str
    higher_is_better: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    @property
    def target_text(self) -> str:
        return f"{'>=' if self.higher_is_better else '<='} {self.target:g}"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def fleet_of(n: int) -> dict[str, Any]:
    """n instances in groups of 50, cycling through five GPU models (so larger fleets search more queries)."""
    groups: dict[str, Any] = {}
    for g in range(math.ceil(n / GROUP)):
        groups[f"g{g}"] = {"gpu": GPUS[g % len(GPUS)], "count": min(GROUP, n - g * GROUP),
                           "image": "pytorch/pytorch:2.4.0", "disk_gb": 32, "max_dph": 12}
    return groups


def roomy_team_file(directory: Path, instances: int) -> Path:
    """The team's own file with limits raised so the fleet passes: we time the rules, not a denial."""
    data = json.loads(team_policy_config(TEAM).read_text())
    data["vast-gpu-allow-list"]["allowed_gpus"] = list(GPUS)
    data["vast-instance-max-dph"]["max_dph"] = 20
    data["vast-max-instances"]["max_instances"] = instances
    data["vast-max-gpus"]["max_gpus"] = instances
    for rule in ("vast-daily-budget", "vast-daily-budget-warning"):
        data[rule]["daily_budget"] = 10_000_000
    path = directory / f"{TEAM}-{instances}.json"
    path.write_text(json.dumps(data))
    return path


@dataclass
class Stage:
    engine: Engine
    emulator: EmulatorServer
    ws: Workspace
    pack: list[str]
    account: Account

    def timed(self, *args: str) -> float:
        start = time.perf_counter()
        self.ws.cli.run(*args, stack=TEAM, timeout=3600)
        return time.perf_counter() - start

    def calls(self) -> Counter[str]:
        return Counter(r.operation for r in self.emulator.market.requests.records() if r.operation != "control")

    def rejected(self) -> int:
        return sum(1 for r in self.emulator.market.requests.records() if r.status == 429)


@contextmanager
def stage(tmp: Path, name: str, n: int, *, rate_limits: bool = False, latency_ms: int = 0) -> Iterator[Stage]:
    engine = ensure(log=lambda _m: None)
    with EmulatorServer(port=0, seed=11, provision_delay=0, offers=OFFERS) as srv:
        key = secrets.token_urlsafe(24)
        account = srv.create_account(api_key=key, balance=10_000_000, username=TEAM)
        ws = Workspace.create(engine, tmp / f"ws-{name}", state_dir=tmp / f"state-{name}",
                              extra_env={"PULUMI_HOME": str(tmp / "home")})
        ws.init_team(TEAM, api_key=key, vast_url=srv.url)
        ws.set_fleet(TEAM, fleet_of(n))
        pack = ["--policy-pack", str(POLICY_PACK), "--policy-pack-config", str(roomy_team_file(tmp, n))]
        # Rate limits and latency only for what is measured: setting up the stack is not.
        srv.market.configure(ConfigBody(rate_limits=rate_limits, latency_ms=latency_ms))
        srv.market.requests.clear()
        yield Stage(engine, srv, ws, pack, account)


# -- 1. policy overhead ------------------------------------------------------------------------------------

NOOP_PACK = """\
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy

PolicyPack(name="noop", enforcement_level=EnforcementLevel.ADVISORY, policies=[ResourceValidationPolicy(
    name="noop", description="Judges nothing: the engine's cost of any Python pack.", validate=lambda _a, _r: None)])
"""


def noop_pack(directory: Path) -> Path:
    """A Python pack that judges nothing, run by the same runtime as ours: what the engine charges any pack (its
    start, and two calls per resource into it), so that the row tells that floor from vastguard's own cost."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "PulumiPolicy.yaml").write_text(
        f"runtime:\n  name: python\n  options:\n    virtualenv: {POLICY_PACK.parent / '.venv'}\nversion: 0.1.0\n")
    (directory / "__main__.py").write_text(NOOP_PACK)
    return directory


def policy_overhead(tmp: Path, sizes: tuple[int, ...], rounds: int, log: Log) -> Result:
    """Preview without a pack, with a no-op Python pack and with vastguard's, alternating, median of `rounds`.
    The value is vastguard's pack over the no-op pack (what vastguard adds); the ratio to no pack at all (the
    engine's floor for any pack included) is reported beside it."""
    ratios, data = [], {}
    noop = ["--policy-pack", str(noop_pack(tmp / "noop-pack"))]
    for n in sizes:
        with stage(tmp, f"policy-{n}", n) as s:
            s.timed("preview")  # warm: pyc files, plugin discovery
            s.timed("preview", *noop)
            s.timed("preview", *s.pack)
            times: dict[str, list[float]] = {"without": [], "noop": [], "with": []}
            for _ in range(rounds):  # alternating, so noise hits all three
                times["without"].append(s.timed("preview"))
                times["noop"].append(s.timed("preview", *noop))
                times["with"].append(s.timed("preview", *s.pack))
        without, floor, with_pack = (statistics.median(times[k]) for k in ("without", "noop", "with"))
        ratios.append(with_pack / floor)
        data[str(n)] = {"without_s": without, "noop_s": floor, "with_s": with_pack, "ratio": with_pack / floor,
                        "ratio_to_no_pack": with_pack / without, "raw": times}
        log(f"policy overhead at {n}: {without:.2f}s without, {floor:.2f}s with a no-op pack, {with_pack:.2f}s "
            "with vastguard's")
    detail = ", ".join(f"{n}: {d['without_s']:.1f}s / {d['noop_s']:.1f}s / {d['with_s']:.1f}s "
                       f"(vs no pack {d['ratio_to_no_pack']:.2f})" for n, d in data.items())
    return Result(1, f"policy overhead, preview: vastguard's pack / a no-op pack ({'/'.join(map(str, sizes))})",
                  max(ratios), 1.05, f"none / no-op / vastguard: {detail}", data=data)


# -- 2. scaling, and 3. API economy (measured on the same runs) ------------------------------------------


def lower_bound(n: int) -> int:
    """Calls no governed provisioning of n new instances can avoid: a rent each, one search per distinct query (the
    fleet's GPU models), a status read that shows each one running (a listing page holds 25), and the budget's
    charges read (`vastai:TeamSpend`; its listing is the adoption check's)."""
    return n + min(len(GPUS), math.ceil(n / GROUP)) + math.ceil(n / 25) + 1


def seeds_approach(n: int) -> Counter[str]:
    """The seeds' provisioning loop, measured: per instance a live listing, a search, a rent and status
    reads until it runs."""
    with EmulatorServer(port=0, seed=11, provision_delay=0, offers=OFFERS) as srv:
        key = secrets.token_urlsafe(24)
        srv.create_account(api_key=key, balance=10_000_000)
        with VastClient(api_key=key, base_url=srv.url) as vast:
            known = vast.gpu_names()
            srv.market.requests.clear()
            for name, group in fleet_of(n).items():
                spec = InstanceSpec(team=TEAM, gpu_name=group["gpu"], image=group["image"],
                                                 disk_gb=group["disk_gb"], max_dph=group["max_dph"])
                for i in range(group["count"]):
                    label = f"{TEAM}/{name}-{i}"
                    if any(inst.label == label for inst in vast.list_instances()):
                        continue
                    offer = provisioning.matching_offers(vast, spec, known)[0]
                    instance_id = vast.create_instance(offer.id, image=spec.image, disk_gb=spec.disk_gb, label=label)
                    while (inst := vast.get_instance(instance_id)) is None or inst.actual_status != "running":
                        time.sleep(0.05)
        return Counter(r.operation for r in srv.market.requests.records() if r.operation != "control")


def scaling_and_economy(tmp: Path, sizes: tuple[int, int], log: Log) -> list[Result]:
    per: dict[int, dict[str, Any]] = {}
    for n in sizes:
        with stage(tmp, f"scale-{n}", n) as s:
            preview_s = s.timed("preview", *s.pack)
            preview_calls = s.calls()
            s.emulator.market.requests.clear()
            up_s = s.timed("up", "--yes", "--skip-preview", *s.pack)
            up_calls = s.calls()
            live = len(s.emulator.market.all_instances(s.account)[0])
        if live != n:
            raise RuntimeError(f"up of {n} instances left {live} on the marketplace")
        per[n] = {"preview_s": preview_s, "up_s": up_s, "preview_calls": dict(preview_calls),
                  "up_calls": dict(up_calls), "live": live}
        log(f"scale {n}: preview {preview_s:.1f}s, up {up_s:.1f}s; up calls {dict(up_calls)}; "
            f"preview calls {dict(preview_calls)}")
    small, large = sizes
    ratio = max((per[large]["preview_s"] / large) / (per[small]["preview_s"] / small),
                (per[large]["up_s"] / large) / (per[small]["up_s"] / small))
    scaling = Result(
        2, f"per-instance time at {large} vs {small} (max of preview, up)", ratio, 1.2,
        f"preview {per[small]['preview_s'] / small * 1000:.0f} -> {per[large]['preview_s'] / large * 1000:.0f} ms, "
        f"up {per[small]['up_s'] / small * 1000:.0f} -> {per[large]['up_s'] / large * 1000:.0f} ms per instance",
        data={str(k): v for k, v in per.items()})

    n = small
    ours = sum(per[n]["up_calls"].values())
    bound = lower_bound(n)
    seeds = seeds_approach(n)
    mutating_in_preview = sum(c for op, c in per[n]["preview_calls"].items() if op in MUTATING) + sum(
        c for op, c in per[large]["preview_calls"].items() if op in MUTATING)
    economy = Result(
        3, f"API calls for up of {n} new instances / lower bound", ours / bound, 1.1,
        f"{ours} calls ({_fmt(per[n]['up_calls'])}) vs bound {bound}; seeds' approach {sum(seeds.values())} "
        f"({_fmt(seeds)}); mutating calls in previews: {mutating_in_preview}",
        data={"ours": per[n]["up_calls"], "lower_bound": bound, "seeds": dict(seeds),
              "mutating_in_preview": mutating_in_preview, "large": per[large]["up_calls"],
              "large_lower_bound": lower_bound(large)})
    if mutating_in_preview:
        economy.value = float("inf")  # a preview that rents, stops or destroys fails the row outright
    return [scaling, economy]


def _fmt(calls: dict[str, int] | Counter[str]) -> str:
    return " ".join(f"{op} {c}" for op, c in sorted(calls.items()))


# -- 4. throughput under Vast's rate limits ----------------------------------------------------------------


def rate_limit_bound(n: int, latency: float) -> float:
    """The fastest any client could rent n instances under Vast's per-key limits (as the emulator enforces
    them): the create bucket starts full (its burst), then refills at its rate; one round trip to confirm the
    last one is running."""
    limit = VAST_LIMITS["create"]
    return max(0.0, (n - limit.burst) / limit.rate) + 2 * latency


def throughput(tmp: Path, n: int, log: Log) -> Result:
    """`pulumi up` of n new instances under Vast's limits. The value compares the span of Vast traffic (first
    request to last, from the emulator's log) with the rate-limit bound; the engine's own start (program,
    plugins, pack) before the first request and its finish after the last are reported beside it, as is the
    raw ratio of the whole command to the bound."""
    latency = 0.150
    with stage(tmp, f"limits-{n}", n, rate_limits=True, latency_ms=int(latency * 1000)) as s:
        clock = s.emulator.market.clock
        began = clock.now()
        up_s = s.timed("up", "--yes", "--skip-preview", *s.pack)
        ended = clock.now()
        calls, rejected = s.calls(), s.rejected()
        stamps = [r.timestamp for r in s.emulator.market.requests.records() if r.operation != "control"]
        live = len(s.emulator.market.all_instances(s.account)[0])
    if live != n:
        raise RuntimeError(f"up of {n} instances under rate limits left {live} on the marketplace")
    bound = rate_limit_bound(n, latency)
    span = max(stamps) - min(stamps) + latency
    start, finish = min(stamps) - began, ended - max(stamps)
    log(f"throughput {n}: up {up_s:.1f}s = start {start:.1f}s + Vast traffic {span:.1f}s + finish {finish:.1f}s; "
        f"bound {bound:.1f}s; {rejected} rejected; calls {dict(calls)}")
    return Result(4, f"up of {n} under rate limits + 150 ms: Vast traffic / bound", span / bound, 1.2,
                  f"traffic {span:.1f}s vs bound {bound:.1f}s; whole up {up_s:.1f}s (engine start {start:.1f}s, "
                  f"finish {finish:.1f}s; raw {up_s / bound:.2f}x); {rejected} requests rejected as over the limit",
                  data={"up_s": up_s, "bound_s": bound, "traffic_s": span, "engine_start_s": start,
                        "engine_finish_s": finish, "rejected": rejected, "calls": dict(calls)})


# -- 5. reports -------------------------------------------------------------------------------------------


def reports(tmp: Path, updates: int, rounds: int, log: Log) -> Result:
    root = tmp / "reports"
    ref = write_history(root, updates=updates, instances=50)
    history = sorted((root / ".pulumi/history/vastguard/bench").glob("*.history.json"))
    files = [p for h in history for p in (h, h.with_name(h.name.replace(".history.", ".checkpoint.")))]
    parse_only(files)  # warm the page cache for both sides
    parse, fold = [], []
    for _ in range(max(3, rounds)):
        start = time.process_time()
        parse_only(files)
        parse.append(time.process_time() - start)
        start = time.process_time()
        reports_pipeline(root, ref, len(history))
        fold.append(time.process_time() - start)
    ratio = min(fold) / min(parse)
    log(f"reports: parse {min(parse):.2f}s, fold {min(fold):.2f}s CPU for {len(history)} updates")
    return Result(5, f"reports: fold {len(history)} updates x 50 instances / parse", ratio, 2.0,
                  f"parse {min(parse):.2f}s, full spend pipeline {min(fold):.2f}s CPU "
                  f"({min(fold) / len(history) * 1000:.1f} ms per update)",
                  data={"parse_cpu_s": parse, "fold_cpu_s": fold, "updates": len(history)})


# -- 6. the guard -------------------------------------------------------------------------------------------


def guard(tmp: Path, teams: int, instances: int, log: Log) -> Result:
    """One `vastguard guard` pass over `teams` teams of `instances` running instances each (bench/guard.py)."""
    run = guard_pass(tmp / "guard", teams=teams, instances=instances)
    log(f"guard {teams}x{instances}: {run.calls_per_team} calls per team ({run.calls}), pass {run.elapsed_s:.2f}s "
        f"vs bound {run.bound_s:.2f}s, {run.rejected} rejected")
    return Result(6, f"guard pass, {teams} teams x {instances}: API calls per team / 2", run.calls_per_team / 2, 1.0,
                  f"{run.calls_per_team} per team ({_fmt(run.calls)}: one listing, one charges read); pass "
                  f"{run.elapsed_s:.2f}s vs rate-limit bound {run.bound_s:.2f}s ({run.elapsed_s / run.bound_s:.2f}x: "
                  f"2 round trips of 150 ms per team, {teams} teams over {run.workers} workers); {run.rejected} "
                  "requests rejected", data=asdict(run))


ROWS = {1: "policy overhead", 2: "scaling", 3: "API economy", 4: "throughput under rate limits", 5: "reports",
        6: "guard"}


def run_rows(rows: list[int], *, quick: bool, rounds: int, log: Log) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="vg-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if 1 in rows:
            results.append(policy_overhead(tmp, (5, 10) if quick else (50, 200), rounds, log))
        if 2 in rows or 3 in rows:
            both = scaling_and_economy(tmp, (5, 20) if quick else (50, 500), log)
            results.extend(r for r in both if r.row in rows)
        if 4 in rows:
            results.append(throughput(tmp, 10 if quick else 100, log))
        if 5 in rows:
            results.append(reports(tmp, 50 if quick else 1000, rounds, log))
        if 6 in rows:
            results.append(guard(tmp, 5 if quick else 50, 4 if quick else 20, log))
    return sorted(results, key=lambda r: r.row)
