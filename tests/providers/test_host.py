"""The provider host ends with its engine: a killed `pulumi up` must not leave provider processes behind."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

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


def test_a_failure_reaches_the_engine_word_for_word() -> None:
    """Through a real gRPC server, as the SDK's host serves the provider: the engine gets our one line, not
    `Exception calling application: ...`; outside a server the same call raises ProviderError."""

    def provider_method() -> None:
        host.fail("notebook-0: the Vast.ai API is unreachable; start it")

    def behavior(_request: bytes, context: grpc.ServicerContext) -> bytes:
        provider_method()
        return b""

    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "vastguard.Test", {"Create": grpc.unary_unary_rpc_method_handler(behavior)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary("/vastguard.Test/Create")(b"", timeout=30)
        assert caught.value.details() == "notebook-0: the Vast.ai API is unreachable; start it"
    finally:
        server.stop(0)
    with pytest.raises(host.ProviderError, match=r"^notebook-0: the Vast\.ai API is unreachable; start it$"):
        provider_method()
