"""The layering contract (pyproject.toml, `[tool.importlinter]`): the tree keeps it, and each contract breaks on a
deliberate violation, so none of them is a contract that cannot fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {contract["id"]: contract["name"] for contract in CONFIG["contracts"]}


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    # cwd is what import-linter puts on sys.path to find the root packages.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")], cwd=root,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_tree_keeps_its_layers() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root packages' Python files and the configuration, nothing else (fast to lint, safe to break)."""
    copy = tmp_path_factory.mktemp("layers")
    shutil.copyfile(ROOT / "pyproject.toml", copy / "pyproject.toml")
    for package in CONFIG["root_packages"]:
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__", "go", "*.json"))
    return copy


VIOLATIONS = [
    ("httpx", "providers", "import httpx"),
    ("pulumi", "reports", "import pulumi"),
    ("pulumi", "vastguard", "from pulumi_policy import PolicyPack"),
    ("fleet", "fleet", "import subprocess"),
    ("fleet", "fleet", "from pathlib import Path"),
    ("fleet", "fleet", "from vastclient import VastClient"),
    ("emulator", "emulator", "from vastclient.models import Offer"),
    ("reports", "reports", "from engine import ensure"),
    ("reports", "reports", "from vastguard.pulumi_cli import PulumiCLI"),
    ("pack", "policies", "import vastclient"),
    ("client", "vastclient", "from providers import market"),
    ("budget", "budget", "from vastguard.pulumi_cli import PulumiCLI"),
    ("budget", "budget", "from providers import team_spend"),
]


@pytest.mark.parametrize(("contract", "package", "line"), VIOLATIONS)
def test_a_deliberate_violation_breaks_its_contract(tree_copy: Path, contract: str, package: str, line: str) -> None:
    intruder = tree_copy / package / "_layer_violation.py"
    intruder.write_text(f"{line}  # a deliberate violation\n")
    try:
        result = lint(tree_copy)
    finally:
        intruder.unlink()
    assert result.returncode != 0
    assert f"{CONTRACTS[contract]} BROKEN" in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert f"{package}._layer_violation" in result.stdout


def test_the_policy_packs_start_up_loads_no_http_client() -> None:
    """What the engine imports to start the pack, measured in a fresh interpreter (the contract only sees our
    own imports, not what a third-party package might pull in)."""
    probe = "import sys, policies.pack; print(sorted(m for m in ('httpx', 'vastclient') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=True)
    assert result.stdout.strip() == "[]"
