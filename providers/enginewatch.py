"""The SDK's dynamic-provider host (`python -m pulumi.dynamic HOST:PORT`, pulumi SDK 3.259.0) ends with its engine.

Standard library only: the project's virtualenv imports this module from a `.pth` file at the start of the host
process, before the SDK has served a single RPC (`install_startup_hook`, run by `./dev setup`)."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HOOK_NAME = "vastguard-engine-watch.pth"
# A .pth line that starts with `import` is executed at every interpreter start of the venv, so the line itself
# decides cheaply whether this is the provider host: nothing else pays more than a list lookup.
HOOK_LINE = ("import sys; 'pulumi.dynamic' in getattr(sys, 'orig_argv', ()) and "
             "__import__('providers.enginewatch').enginewatch.watch_from_startup()\n")

_LOCK = threading.Lock()
_STARTED = False


def engine_address(argv: Sequence[str]) -> tuple[str, int] | None:
    """The engine's address when this process is the SDK's dynamic provider host, else None: from `sys.argv`
    once the host runs (`.../pulumi/dynamic/__main__.py HOST:PORT`), or from `sys.orig_argv` at startup
    (`python [-u] -m pulumi.dynamic HOST:PORT`)."""
    args = list(argv)
    if len(args) >= 2 and args[0].replace("\\", "/").endswith("pulumi/dynamic/__main__.py"):
        rest = args[1:]
    elif "-m" in args and args[(at := args.index("-m")) + 1:at + 2] == ["pulumi.dynamic"]:
        rest = args[at + 2:]
    else:
        return None
    if not rest:
        return None
    host, _, port = rest[0].rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def exit_with_engine(address: tuple[str, int] | None, *, interval: float = 2.0, misses: int = 2,
                     exit_: Callable[[int], None] = os._exit) -> bool:
    """End this process once the engine that started it stops answering; True when the watch was started.

    The SDK's host serves until it is told to stop, and only the engine tells it. When the engine dies without
    saying so (SIGKILL, a CI job's timeout), the host lives on, reparented, forever: every killed `pulumi up`
    left one behind. Each `interval` seconds the watch opens a TCP connection to the engine's gRPC port;
    after `misses` refusals in a row the engine is gone, and so is any answer this process could give."""
    global _STARTED
    if address is None:
        return False
    with _LOCK:
        if _STARTED:
            return False
        _STARTED = True

    def watch() -> None:
        missed = 0
        while True:
            time.sleep(interval)
            try:
                socket.create_connection(address, timeout=interval).close()
                missed = 0
            except OSError:
                missed += 1
                if missed >= misses:
                    exit_(0)
                    return

    threading.Thread(target=watch, name="vastguard-engine-watch", daemon=True).start()
    return True


def watch_from_startup() -> bool:
    """Start the watch from the `.pth` hook. The provider's own code first runs at the first RPC that carries
    it (the SDK unpickles `__provider` in Check/Create/...), so an engine killed while the host was still
    starting, or between its GetPluginInfo and its first Check, left a host no code of ours could end."""
    try:
        return exit_with_engine(engine_address(getattr(sys, "orig_argv", [])))
    except Exception:  # a startup hook must never stop the interpreter from starting
        return False


def install_startup_hook(site_packages: Path) -> Path:
    """Write the `.pth` hook into a virtualenv's site-packages (idempotent); the path written."""
    if not site_packages.is_dir():
        raise SystemExit(f"error: {site_packages} is not a directory: pass the virtualenv's site-packages")
    hook = site_packages / HOOK_NAME
    if not hook.is_file() or hook.read_text() != HOOK_LINE:
        hook.write_text(HOOK_LINE)
    return hook


if __name__ == "__main__":
    import sysconfig

    print(install_startup_hook(Path(sysconfig.get_paths()["purelib"])))
