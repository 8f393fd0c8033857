"""Quirks of the Python dynamic provider host (`python -m pulumi.dynamic`, pulumi SDK 3.259.0) that the
provider works around from inside its own process."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

import grpc

PROVIDER_WORKERS = 64


def widen_worker_pool(workers: int = PROVIDER_WORKERS) -> bool:
    """Let the host serve up to `workers` RPCs at once; True when the pool was widened.

    The host serves gRPC from `ThreadPoolExecutor(max_workers=4)` (pulumi/dynamic/__main__.py). A create
    holds its worker until the machine has booted (minutes on Vast), so with four workers a fleet rolls out
    four machines at a time whatever `--parallel` says. Called from an RPC, the current thread is one of that
    pool's workers, and its arguments hold a weak reference to the pool (CPython's `_adjust_thread_count`),
    whose `_max_workers` is read again on every submit. Outside such a pool this does nothing."""
    args = getattr(threading.current_thread(), "_args", ())
    if not args or not isinstance(args[0], weakref.ReferenceType):
        return False
    pool = args[0]()
    if not isinstance(pool, ThreadPoolExecutor) or pool._max_workers >= workers:
        return False
    pool._max_workers = workers
    return True


_WATCHDOG_LOCK = threading.Lock()
_WATCHDOG_STARTED = False


def engine_address(argv: list[str]) -> tuple[str, int] | None:
    """The engine's address when this process is the SDK's dynamic provider host (`python -m pulumi.dynamic
    HOST:PORT`), else None."""
    if len(argv) < 2 or not argv[0].replace("\\", "/").endswith("pulumi/dynamic/__main__.py"):
        return None
    host, _, port = argv[1].rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def exit_with_engine(address: tuple[str, int] | None, *, interval: float = 2.0, misses: int = 2,
                     exit_: Callable[[int], None] = os._exit) -> bool:
    """End this process once the engine that started it stops answering; True when the watch was started.

    The SDK's host serves until it is told to stop, and only the engine tells it. When the engine dies without
    saying so (SIGKILL, a CI job's timeout), the host lives on, reparented, forever: every killed `pulumi up`
    left one behind. Each `interval` seconds the watch opens a TCP connection to the engine's gRPC port;
    after `misses` refusals in a row the engine is gone, and so is any answer this process could give."""
    global _WATCHDOG_STARTED
    if address is None:
        return False
    with _WATCHDOG_LOCK:
        if _WATCHDOG_STARTED:
            return False
        _WATCHDOG_STARTED = True

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


class ProviderError(RuntimeError):
    """A provider call failed in a way the user must act on; the message says what happened and the fix."""


def fail(message: str) -> NoReturn:
    """End the RPC this thread serves with exactly `message` as its error.

    The SDK's host lets an exception escape into gRPC, which reports it as `Exception calling application:
    <text>`, and the engine prints that. The host hands the provider no gRPC context, but the servicer's frame
    beneath this one holds it: aborting through it sends our message as the RPC's error, word for word. Outside
    the host (tests, no servicer on the stack) this raises ProviderError."""
    frame = sys._getframe(1)
    while frame is not None:
        context = frame.f_locals.get("context")
        if isinstance(context, grpc.ServicerContext):
            context.abort(grpc.StatusCode.UNKNOWN, message)
        frame = frame.f_back  # type: ignore[assignment]
    raise ProviderError(message)
