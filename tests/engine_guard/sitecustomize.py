"""The `engine` marker's guard: a test without `@pytest.mark.engine` starts no Pulumi engine.

`install()` wraps process creation (`subprocess`, `os.exec*`, `os.posix_spawn*`) so that starting the engine (an
executable named `pulumi` that is a compiled program: a test's stand-in shell script is not the engine) records
the attempt in the file named by VASTGUARD_ENGINE_GUARD and raises instead. The test
process installs it around each non-engine test (tests/conftest.py); Python processes such a test starts
(`vastguard demo`, `./dev pulumi`, ...) install it themselves at start-up, since tests/conftest.py puts this
directory first on their PYTHONPATH and Python imports `sitecustomize` before anything else. The fixture fails
the test on any record, whichever process made it. Kept free of the project's imports for that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

ENV = "VASTGUARD_ENGINE_GUARD"
ENGINE = "pulumi"


class EngineStartedError(RuntimeError):
    pass


def _program(argv: Any) -> str:
    if isinstance(argv, str | bytes | os.PathLike):
        text = os.fsdecode(argv).strip()
        return text.split()[0] if text else ""
    if isinstance(argv, Sequence) and argv:
        return os.fsdecode(argv[0])
    return ""


def _is_engine(path: str) -> bool:
    found = path if os.sep in path else shutil.which(path)
    if not found:
        return True  # cannot tell: fail closed
    try:
        with open(found, "rb") as binary:
            return binary.read(4) == b"\x7fELF"
    except OSError:
        return True


def check(argv: Any, executable: Any = None) -> None:
    record = os.environ.get(ENV)
    if not record:
        return
    path = os.fsdecode(executable) if executable else _program(argv)
    if os.path.basename(path) != ENGINE or not _is_engine(path):
        return
    with open(record, "a", encoding="utf-8") as out:
        out.write(f"pid {os.getpid()}: {argv!r}\n")
    raise EngineStartedError(f"a test without @pytest.mark.engine started the Pulumi engine: {argv!r}")


_ORIGINALS: dict[str, Callable[..., Any]] = {}
_SPAWNERS = ("execv", "execve", "execvp", "execvpe", "posix_spawn", "posix_spawnp")


def install() -> None:
    if _ORIGINALS:
        return
    _ORIGINALS["execute_child"] = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def execute_child(self: Any, args: Any, executable: Any, *rest: Any, **kw: Any) -> Any:
        check(args, executable)
        return _ORIGINALS["execute_child"](self, args, executable, *rest, **kw)

    subprocess.Popen._execute_child = execute_child  # type: ignore[attr-defined]
    for name in _SPAWNERS:
        original = getattr(os, name, None)
        if original is None:
            continue
        _ORIGINALS[name] = original

        def guarded(path: Any, *args: Any, _original: Any = original, **kw: Any) -> Any:
            check(args[0] if args else path, path)
            return _original(path, *args, **kw)

        setattr(os, name, guarded)


def uninstall() -> None:
    if not _ORIGINALS:
        return
    subprocess.Popen._execute_child = _ORIGINALS.pop("execute_child")  # type: ignore[attr-defined]
    for name, original in _ORIGINALS.items():
        setattr(os, name, original)
    _ORIGINALS.clear()


if os.environ.get(ENV):
    install()
