"""Fixtures that run the real Pulumi engine (the pinned CLI built by ./dev setup) on a local file backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine import Engine, ensure, repo_root
from vastguard.pulumi_cli import PulumiCLI

VENV = repo_root() / ".venv"


@pytest.fixture(scope="session")
def engine() -> Engine:
    # No skip: the engine is part of the test setup (./dev test builds it); if it cannot be provided, the
    # tests that need it must fail with ensure()'s message saying what to install.
    return ensure(log=lambda _line: None)


@pytest.fixture(scope="session")
def pulumi_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pulumi-home")


def write_project(directory: Path, *, name: str, main: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.yaml").write_text(
        f"name: {name}\n"
        "runtime:\n  name: python\n  options:\n"
        f"    virtualenv: {VENV}\n"
    )
    (directory / "__main__.py").write_text(main)


@pytest.fixture
def make_cli(engine: Engine, pulumi_home: Path, tmp_path: Path) -> Callable[[Path], PulumiCLI]:
    def make(project_dir: Path) -> PulumiCLI:
        return PulumiCLI.for_project(
            engine, project_dir, state_dir=tmp_path / "state",
            extra_env={"PULUMI_HOME": str(pulumi_home), "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}"},
        )

    return make
