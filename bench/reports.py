"""Benchmark: reading and folding a long stack history vs merely parsing the same JSON files.

    python -m bench.reports [--updates 2000] [--instances 50] [--repeat 3] [--data DIR]

Writes a stack history of `--updates` operations over a fleet of `--instances` instances (each operation
stops, starts or replaces some of them; every checkpoint holds the whole fleet, as Pulumi's do), then times,
on growing prefixes of that history, interleaved in one run so that machine noise hits both alike:

- `parse`: read every history and checkpoint file and `json.loads` it: the floor any reader pays;
- `reports`: what `vastguard spend` does: read, decode, validate the instance resources, fold the history into
  audit events and timelines, and cost them per day.

It prints a table and writes JSON to bench/results/. "Proportional to its size" shows as a constant time per
entry (and per MB) across the prefixes, and the ratio to `parse` shows the reports' own overhead. The ratio
is taken on CPU time (minimum of the repeats): on two shared cores wall time swings with the neighbours.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from reports.costing import spend_report
from reports.fold import fold_stack
from reports.sources import DiyHistory, LocalBucket, StackRef
from tests.reports.synthetic import Rented, StackWriter, ci_environment

GPUS = (("RTX 4090", 0.42), ("A100 SXM4", 1.19), ("H100 SXM", 2.95), ("RTX 3090", 0.21))
START = datetime(2026, 1, 1, tzinfo=UTC)
RESULTS = Path(__file__).resolve().parent / "results"


def write_history(root: Path, *, updates: int, instances: int) -> StackRef:
    """A fleet of `instances` that each operation changes a little: one stop or start, and every tenth
    operation a replacement, with a refresh every 25th; operations are an hour apart."""
    w = StackWriter(root, "bench", "ml-research")
    next_id = 100_000
    for i in range(instances):
        gpu, dph = GPUS[i % len(GPUS)]
        w.rent(Rented(f"node-{i}", next_id, gpu, dph, disk_gb=64))
        next_id += 1
    env = ci_environment()
    for n in range(updates):
        if n:
            name = f"node-{n % instances}"
            if n % 10 == 0:
                old = w.remove(name)
                w.rent(Rented(name, next_id, old.gpu_name, old.dph_total, disk_gb=old.disk_gb))
                next_id += 1
            elif n % 25 != 0:
                w.set_state(name, "stopped" if w.instances[name].state == "running" else "running")
        w.record(start=START + timedelta(hours=n), kind="refresh" if n % 25 == 0 and n else "update",
                 refresh=n % 25 == 0, message=f"change {n}", environment=env)
    return StackRef("vastguard", "bench")


def parse_only(paths: list[Path]) -> int:
    count = 0
    for path in paths:
        json.loads(path.read_bytes())
        count += 1
    return count


def reports_pipeline(root: Path, ref: StackRef, entries: int) -> int:
    source = DiyHistory(f"file://{root}", LocalBucket(root))
    fold = fold_stack(ref.project, ref.stack, itertools.islice(source.entries(ref), entries))
    end = START + timedelta(hours=entries + 1)  # operations are an hour apart: the history's own span
    spend_report(fold.timelines, start=START, end=end, now=end, granularity="day", generated_at=START)
    return len(fold.events)


def timed(run: Callable[[], int]) -> tuple[float, float]:
    """(wall, CPU) seconds. On a shared machine the CPU time of this single-threaded process is the stable
    measure (other tenants steal wall time, not CPU time); both are reported."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, help="keep the generated history here (reused if present)")
    args = parser.parse_args(argv)
    console = Console(stderr=True)

    root = args.data or Path(tempfile.mkdtemp(prefix="bench-reports-"))
    ref = StackRef("vastguard", "bench")
    history_dir = root / ".pulumi/history/vastguard/bench"
    if not history_dir.is_dir():
        begin = time.perf_counter()
        write_history(root, updates=args.updates, instances=args.instances)
        console.print(f"wrote {args.updates} operations x {args.instances} instances in "
                      f"{time.perf_counter() - begin:.1f}s to {root}")
    histories = sorted(history_dir.glob("*.history.json"))
    pairs = [(h, h.with_name(h.name.replace(".history.", ".checkpoint."))) for h in histories]
    sizes = sorted({max(1, len(pairs) // 8), len(pairs) // 4, len(pairs) // 2, len(pairs)} - {0})

    parse_only([p for pair in pairs for p in pair])  # warm the page cache for both sides alike
    rows = []
    for entries in sizes:
        files = [p for pair in pairs[:entries] for p in pair]
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        parse: list[tuple[float, float]] = []
        report: list[tuple[float, float]] = []
        for _ in range(args.repeat):  # interleaved, so a noisy spell hits both sides
            parse.append(timed(lambda files=files: parse_only(files)))  # type: ignore[misc]
            report.append(timed(lambda entries=entries: reports_pipeline(root, ref, entries)))  # type: ignore[misc]
        parse_cpu, report_cpu = min(c for _, c in parse), min(c for _, c in report)
        parse_wall = statistics.median(w for w, _ in parse)
        report_wall = statistics.median(w for w, _ in report)
        rows.append({
            "entries": entries, "instances": args.instances, "megabytes": round(megabytes, 1),
            "parse_cpu_s": round(parse_cpu, 4), "reports_cpu_s": round(report_cpu, 4),
            "ratio_cpu": round(report_cpu / parse_cpu, 3),
            "parse_wall_s": round(parse_wall, 4), "reports_wall_s": round(report_wall, 4),
            "ratio_wall": round(report_wall / parse_wall, 3),
            "reports_cpu_us_per_entry": round(report_cpu / entries * 1e6, 1),
            "reports_cpu_ms_per_mb": round(report_cpu / megabytes * 1e3, 2),
            "parse_cpu_ms_per_mb": round(parse_cpu / megabytes * 1e3, 2),
        })

    table = Table(title=f"Reports vs plain JSON parsing: {args.instances} instances per checkpoint; CPU = min of "
                        f"{args.repeat}, wall = median")
    for name in ("entries", "MB", "parse CPU s", "reports CPU s", "ratio CPU", "parse wall s", "reports wall s",
                 "ratio wall", "reports µs/entry", "reports ms/MB", "parse ms/MB"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(str(r["entries"]), f"{r['megabytes']:.1f}", f"{r['parse_cpu_s']:.3f}",
                      f"{r['reports_cpu_s']:.3f}", f"{r['ratio_cpu']:.2f}", f"{r['parse_wall_s']:.3f}",
                      f"{r['reports_wall_s']:.3f}", f"{r['ratio_wall']:.2f}", f"{r['reports_cpu_us_per_entry']:.0f}",
                      f"{r['reports_cpu_ms_per_mb']:.2f}", f"{r['parse_cpu_ms_per_mb']:.2f}")
    Console(width=160).print(table)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"reports-{stamp}.json"
    out.write_text(json.dumps({
        "benchmark": "reports", "created": stamp, "updates": args.updates, "instances": args.instances,
        "repeat": args.repeat, "python": sys.version.split()[0], "machine": platform.machine(),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "rows": rows,
    }, indent=2) + "\n")
    console.print(f"wrote {out}")
    if args.data is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
