"""`python -m emulator --port 8787 [--state-file PATH] [--seed N] [--provision-delay SECONDS] ...`

Serves until SIGTERM or Ctrl-C, then stops cleanly (saving the state file, if any). Accounts come from the
control plane (`POST /_emulator/accounts`) or from `--accounts-file`, a JSON list of
`{"api_key": ..., "balance": ..., "username": ...}`: keys are never taken on the command line, where
`ps` and shell history would show them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pydantic import TypeAdapter, ValidationError

from emulator import catalogue
from emulator.bodies import AccountBody
from emulator.errors import Conflict
from emulator.persistence import StateFileError
from emulator.server import EmulatorServer


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emulator", description="Local emulator of the Vast.ai REST API.")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8787, help="port (default 8787; 0 picks a free one)")
    p.add_argument("--state-file", type=Path, help="persist the market here and resume from it on restart")
    p.add_argument("--seed", type=int, default=0, help="catalogue seed (ignored when resuming a state file)")
    p.add_argument("--offers", type=int, default=catalogue.DEFAULT_OFFERS, help="catalogue size")
    p.add_argument("--provision-delay", type=float, help="seconds from rent to running (default 5)")
    p.add_argument("--rate-limits", action="store_true", default=None, help="enforce Vast's per-key rate limits")
    p.add_argument("--latency-ms", type=int, help="added to every API call")
    p.add_argument("--strict-search", action="store_true", default=None,
                   help="reject unknown search filter fields instead of dropping them as Vast does")
    p.add_argument("--freeze-clock", action="store_true", help="start with the virtual clock frozen")
    p.add_argument("--accounts-file", type=Path, help="JSON list of accounts to create at start-up")
    p.add_argument("--log-level", default="WARNING", help="e.g. INFO to log every request (never keys)")
    return p


def _load_accounts(path: Path) -> list[AccountBody]:
    try:
        return TypeAdapter(list[AccountBody]).validate_json(path.read_bytes())
    except (OSError, ValidationError, json.JSONDecodeError) as exc:
        raise SystemExit(f"--accounts-file {path}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    accounts = _load_accounts(args.accounts_file) if args.accounts_file else []
    try:
        server = EmulatorServer(host=args.host, port=args.port, seed=args.seed, offers=args.offers,
                                state_file=args.state_file, provision_delay=args.provision_delay,
                                rate_limits=args.rate_limits, latency_ms=args.latency_ms,
                                strict_search=args.strict_search, freeze_clock=args.freeze_clock)
    except StateFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for body in accounts:
        with contextlib.suppress(Conflict):  # already there: a resumed state file
            server.market.create_account(body)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    resumed = f", resumed from {args.state_file}" if server.restored else ""
    print(f"vastguard emulator: Vast.ai API at {server.url} (control plane {server.url}/_emulator/, "
          f"seed {server.market.state.seed}, {len(server.market.state.offers)} offers{resumed})", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    print("vastguard emulator: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
