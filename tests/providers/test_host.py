"""The provider host ends with its engine: a killed `pulumi up` must not leave provider processes behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from providers import enginewatch, host
from providers.enginewatch import HOOK_LINE, HOOK_NAME, engine_address, exit_with_engine, install_startup_hook


def test_the_engine_address_is_read_only_in_the_sdks_dynamic_host() -> None:
    main = "/venv/lib/python3.11/site-packages/pulumi/dynamic/__main__.py"
    assert engine_address([main, "127.0.0.1:41951"]) == ("127.0.0.1", 41951)
    assert engine_address([main]) is None
    assert engine_address([main, "not-an-address"]) is None
    assert engine_address(["/usr/bin/pytest", "127.0.0.1:41951"]) is None
    # At interpreter startup (the .pth hook) only `sys.orig_argv` says what is starting.
    assert engine_address(["/venv/bin/python", "-u", "-m", "pulumi.dynamic", "127.0.0.1:41951"]) == ("127.0.0.1", 41951)
    assert engine_address(["/venv/bin/python", "-m", "pulumi.dynamic"]) is None
    assert engine_address(["/venv/bin/python", "-m", "pytest", "127.0.0.1:41951"]) is None
    assert engine_address(["/venv/bin/python", "-m"]) is None


def test_the_host_exits_once_the_engine_stops_answering() -> None:
    enginewatch._STARTED = False
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
        enginewatch._STARTED = False


def test_a_host_whose_engine_dies_before_its_first_rpc_exits() -> None:
    """The SDK's own host, started as the engine starts it and never sent an RPC (the engine was SIGKILLed
    while it started): the virtualenv's startup hook watches the engine, so the host ends by itself."""
    engine = socket.socket()
    engine.bind(("127.0.0.1", 0))
    engine.listen()
    host_, port = engine.getsockname()
    proc = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.dynamic", f"{host_}:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip().isdigit()  # serving: the port it tells the engine
        time.sleep(3)
        assert proc.poll() is None, "the host exited while its engine still answered"
        engine.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            hook = Path(sysconfig.get_paths()["purelib"]) / HOOK_NAME
            raise AssertionError(f"the provider host outlived its engine by 30s; is {hook} there? `./dev setup` "
                                 "writes it") from None
        assert proc.returncode == 0
    finally:
        engine.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_the_startup_hook_is_written_once_and_starts_the_watch_only_in_the_host(tmp_path: Path) -> None:
    hook = install_startup_hook(tmp_path)
    assert hook == tmp_path / HOOK_NAME and hook.read_text() == HOOK_LINE
    before = hook.stat().st_mtime_ns
    assert install_startup_hook(tmp_path).stat().st_mtime_ns == before  # idempotent
    with pytest.raises(SystemExit, match="is not a directory"):
        install_startup_hook(tmp_path / "missing")
    # The hook line as `site` runs it, in a process that is not the host: no watch, no import of ours.
    probe = ("import sys; sys.orig_argv = ['python', '-m', 'pytest']; exec(open(sys.argv[1]).read()); "
             "print('providers.enginewatch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe, str(hook)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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
