"""Benchmark: what the policy pack adds to `pulumi preview`.

    python -m bench.policy_overhead [--instances 20 50] [--rounds 3]

For each fleet size it previews one team stack (an A100 fleet on the emulator, with a team file whose limits
let it pass) through the real engine, alternating runs with and without `--policy-pack` so that machine noise
hits both alike, and reports the median wall time of each and their ratio. Every preview is a cold process
tree (engine, language host, program, provider, pack), as in CI.

Prints a table and writes JSON to bench/results/policy_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from emulator import EmulatorServer
from engine import ensure, repo_root
from vastguard.workspace import POLICY_PACK, Workspace, team_policy_config

TEAM = "ml-research"
TARGET = 1.15


def roomy_team_file(directory: Path, instances: int) -> Path:
    """The team's real file with caps raised so that a large fleet passes: we time the rules, not a denial."""
    data = json.loads(team_policy_config(TEAM).read_text())
    data["vast-max-instances"]["max_instances"] = instances
    data["vast-max-gpus"]["max_gpus"] = instances
    for rule in ("vast-daily-budget", "vast-daily-budget-warning"):
        data[rule]["daily_budget"] = 100_000
    path = directory / f"{TEAM}-{instances}.json"
    path.write_text(json.dumps(data))
    return path


def measure(instances: int, rounds: int, tmp: Path) -> dict[str, Any]:
    engine = ensure(log=lambda _m: None)
    with EmulatorServer(port=0, seed=11, provision_delay=0, offers=max(400, instances * 4)) as srv:
        key = secrets.token_urlsafe(24)
        srv.create_account(api_key=key, balance=10_000, username=TEAM)
        ws = Workspace.create(engine, tmp / f"ws-{instances}", state_dir=tmp / f"state-{instances}",
                              extra_env={"PULUMI_HOME": str(tmp / "home")})
        ws.init_team(TEAM, api_key=key, vast_url=srv.url)
        ws.set_fleet(TEAM, {"train": {"gpu": "A100", "count": instances, "image": "pytorch/pytorch:2.4.0",
                                      "disk_gb": 32, "max_dph": 2.2}})
        config = roomy_team_file(tmp, instances)
        pack = ["--policy-pack", str(POLICY_PACK), "--policy-pack-config", str(config)]
        ws.cli.run("preview", stack=TEAM)  # warm caches (pyc, engine plugin discovery) for both variants
        times: dict[str, list[float]] = {"without": [], "with": []}
        for _ in range(rounds):
            for variant, extra in (("without", []), ("with", pack)):
                start = time.perf_counter()
                ws.cli.run("preview", *extra, stack=TEAM)
                times[variant].append(time.perf_counter() - start)
    without, with_pack = statistics.median(times["without"]), statistics.median(times["with"])
    return {"instances": instances, "rounds": rounds, "without_s": without, "with_s": with_pack,
            "ratio": with_pack / without, "target": TARGET, "pass": with_pack / without <= TARGET, "raw": times}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="vg-bench-") as tmp:
        for n in args.instances:
            rows.append(measure(n, args.rounds, Path(tmp)))
    print(f"{'instances':>9}  {'without pack':>12}  {'with pack':>9}  {'ratio':>5}  target  result")
    for r in rows:
        print(f"{r['instances']:>9}  {r['without_s']:>11.2f}s  {r['with_s']:>8.2f}s  {r['ratio']:>5.2f}  "
              f"<= {r['target']:.2f} {'pass' if r['pass'] else 'FAIL'}")
    out = repo_root() / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "policy_overhead.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
