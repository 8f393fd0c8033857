"""`vastguard demo`: the whole journey on embedded defaults (local emulator, local state backend)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the end-to-end journey against the local Vast.ai emulator")
    demo.add_argument("--keep", action="store_true", help="leave the demo's stacks and emulator state behind")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("the demo journey is not wired yet", file=sys.stderr)
    return 1
