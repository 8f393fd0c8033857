"""The six benchmarks of vastguard, side by side in one run, against the emulator through the real engine.

    .venv/bin/python -m bench                 # all six rows (~10 min on a 2-core machine)
    .venv/bin/python -m bench --rows 3 4      # some of them
    .venv/bin/python -m bench --quick         # small sizes: checks the harness, not the targets

Prints one table (row, what was measured, value, target, pass/fail) and writes bench/results/latest.json.
What each number means is in README.md, "Performance".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.suite import ROWS, Result, run_rows
from engine import repo_root


def render(results: list[Result]) -> str:
    head = f"{'#':>2}  {'benchmark':<44} {'measured':>10}  {'target':>8}  result  detail"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.row:>2}  {r.name:<44} {r.value:>10.2f}  {r.target_text:>8}  "
                     f"{'pass' if r.passed else 'FAIL':<6}  {r.detail}")
    return "\n".join(lines)


def markdown(results: list[Result]) -> str:
    lines = ["| # | benchmark | measured | target | result | detail |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r.row} | {r.name} | {r.value:.2f} | {r.target_text} | {'pass' if r.passed else 'FAIL'} | "
              f"{r.detail} |" for r in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", choices=sorted(ROWS), default=sorted(ROWS))
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: exercises the harness")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds for the timed comparisons")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown (README)")
    parser.add_argument("--out", type=Path, default=repo_root() / "bench" / "results" / "latest.json")
    args = parser.parse_args(argv)
    results = run_rows(args.rows, quick=args.quick, rounds=1 if args.quick else args.rounds,
                       log=lambda m: print(m, file=sys.stderr, flush=True))
    print(render(results))
    if args.markdown:
        print("\n" + markdown(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"quick": args.quick, "rows": [r.as_json() for r in results]}, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
