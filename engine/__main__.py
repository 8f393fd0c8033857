"""`python -m engine [ensure|version|bin]`: provide the pinned Pulumi engine."""

from __future__ import annotations

import sys

from engine.build import EngineError, ensure, reported_version


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "ensure"
    if command not in {"ensure", "version", "bin"}:
        print(f"unknown command {command!r}; use one of: ensure, version, bin", file=sys.stderr)
        return 2
    try:
        engine = ensure(log=lambda line: print(line, file=sys.stderr))
    except EngineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if command == "bin":
        print(engine.bin_dir)
    elif command == "version":
        print(f"pulumi v{reported_version(engine.pulumi)} ({engine.source}: {engine.bin_dir})")
    else:
        print(f"Pulumi engine v{engine.version} ready ({engine.source}): {engine.bin_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
