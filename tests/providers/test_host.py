"""The provider host ends with its engine: a killed `pulumi up` must not leave provider processes behind."""

from __future__ import annotations

import socket
import threading
import time

from providers import host
from providers.host import engine_address, exit_with_engine


def test_the_engine_address_is_read_only_in_the_sdks_dynamic_host() -> None:
    main = "/venv/lib/python3.11/site-packages/pulumi/dynamic/__main__.py"
    assert engine_address([main, "127.0.0.1:41951"]) == ("127.0.0.1", 41951)
    assert engine_address([main]) is None
    assert engine_address([main, "not-an-address"]) is None
    assert engine_address(["/usr/bin/pytest", "127.0.0.1:41951"]) is None


def test_the_host_exits_once_the_engine_stops_answering() -> None:
    host._WATCHDOG_STARTED = False
    engine = socket.socket()
    engine.bind(("127.0.0.1", 0))
    engine.listen()
    address = engine.getsockname()
    exited = threading.Event()
    try:
        assert exit_with_engine(address, interval=0.1, misses=2, exit_=lambda _code: exited.set())
        assert not exit_with_engine(address, interval=0.1, exit_=lambda _code: exited.set())  # one watch
        time.sleep(0.5)
        assert not exited.is_set()  # the engine answers: keep serving
        engine.close()  # the engine was SIGKILLed
        assert exited.wait(5)
    finally:
        engine.close()
        host._WATCHDOG_STARTED = False
