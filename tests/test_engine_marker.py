"""`-m "not engine"` starts no engine: a test that asks for the engine's fixtures without the marker is refused at
collection, and one that starts `pulumi` anyway (itself, or through a Python process it starts) fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine_guard import sitecustomize as guard

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_engine(tmp_path: Path) -> Path:
    """A compiled program named `pulumi` as far as the guard can tell (it is never run)."""
    path = tmp_path / "bin" / "pulumi"
    path.parent.mkdir()
    path.write_bytes(b"\x7fELF" + b"\0" * 60)
    path.chmod(0o755)
    return path


def taken_records() -> str:
    """What the guard recorded for this test, removed so that this test itself passes."""
    record = Path(os.environ[guard.ENV])
    text = record.read_text() if record.exists() else ""
    record.unlink(missing_ok=True)
    return text


def test_starting_the_engine_in_the_test_process_is_refused_and_recorded(fake_engine: Path) -> None:
    with pytest.raises(guard.EngineStartedError, match=r"without @pytest\.mark\.engine"):
        subprocess.run([str(fake_engine), "up"], check=False)
    with pytest.raises(guard.EngineStartedError):
        os.execv(str(fake_engine), [str(fake_engine), "up"])
    assert taken_records().count(str(fake_engine)) == 2


def test_starting_it_from_a_python_child_is_recorded_too(fake_engine: Path) -> None:
    child = "import subprocess, sys\ntry:\n    subprocess.run([sys.argv[1], 'preview'])\nexcept Exception:\n    pass\n"
    done = subprocess.run([sys.executable, "-c", child, str(fake_engine)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr  # the child swallowed the error: the record still tells
    assert f"'{fake_engine}', 'preview'" in taken_records()


def test_a_stand_in_script_named_pulumi_is_not_the_engine(tmp_path: Path) -> None:
    script = tmp_path / "pulumi"
    script.write_text("#!/bin/sh\necho v3.259.0\n")
    script.chmod(0o755)
    assert subprocess.run([str(script)], capture_output=True, text=True, check=True).stdout == "v3.259.0\n"
    assert taken_records() == ""


@pytest.mark.engine
def test_a_test_marked_engine_may_start_it(fake_engine: Path) -> None:
    assert guard.ENV not in os.environ
    with pytest.raises(OSError, match="Exec format error"):
        subprocess.run([str(fake_engine)], check=False)


def test_asking_for_the_engine_fixture_without_the_marker_is_refused(pytester: pytest.Pytester,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_unmarked="""
        import pytest

        @pytest.fixture
        def engine():
            return None

        def test_uses_it(engine):
            pass

        @pytest.mark.engine
        def test_says_so(engine):
            pass
    """)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = pytester.runpytest_subprocess("-p", "tests.conftest", "--collect-only", "-q",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*without @pytest.mark.engine*", "*test_unmarked.py::test_uses_it"])
    assert "test_says_so" not in result.stderr.str()
