"""Quirks of the Python dynamic provider host (`python -m pulumi.dynamic`, pulumi SDK 3.259.0) that the
provider works around from inside its own process."""

from __future__ import annotations

import sys
import threading
import weakref
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
