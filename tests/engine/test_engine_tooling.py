"""The engine tooling: pinning, PATH discovery, the versioned cache and its error messages (no build here)."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from engine import DEFAULT_PASSPHRASE, PULUMI_VERSION, EngineError, ensure, project_env, repo_root
from engine.build import REQUIRED, Engine, build_key, cache_root, from_path

ROOT = repo_root()


def test_one_version_everywhere() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"pulumi=={PULUMI_VERSION}" in deps
    assert importlib.metadata.version("pulumi") == PULUMI_VERSION
    go_mod = (ROOT / "engine/go/go.mod").read_text()
    assert re.search(rf"github.com/pulumi/pulumi/pkg/v3 v{re.escape(PULUMI_VERSION)}( // indirect)?\n", go_mod)
    assert re.search(rf"github.com/pulumi/pulumi/sdk/v3 v{re.escape(PULUMI_VERSION)}\n", go_mod)


def fake_bin(directory: Path, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in REQUIRED:
        script = directory / name
        script.write_text(f"#!/bin/sh\necho v{version}\n")
        script.chmod(0o755)
    return directory


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("VASTGUARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    return tmp_path


def test_matching_pulumi_on_path_is_used(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = fake_bin(isolated / "pulumi-bin", PULUMI_VERSION)
    monkeypatch.setenv("PATH", str(bin_dir))
    engine = ensure(log=lambda _m: None)
    assert engine.source == "path" and engine.bin_dir == bin_dir


def test_other_pulumi_version_on_path_is_ignored(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_bin(isolated / "old", "3.100.0")))
    assert from_path() is None


def test_cached_build_is_reused_without_go(isolated: Path) -> None:
    fake_bin(cache_root() / "engine" / build_key() / "bin", PULUMI_VERSION)
    engine = ensure(log=lambda _m: None)
    assert engine == Engine(cache_root() / "engine" / build_key() / "bin", PULUMI_VERSION, "cache")


def test_no_go_and_no_cli_says_what_to_install(isolated: Path) -> None:
    with pytest.raises(EngineError) as err:
        ensure(log=lambda _m: None)
    text = str(err.value)
    assert "`go` is not installed" in text
    assert "install Go >= 1.25" in text and f"Pulumi CLI v{PULUMI_VERSION}" in text


def test_build_key_changes_with_the_go_sources(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module x\n")
    first = build_key(module_dir=tmp_path)
    (tmp_path / "main.go").write_text("package main\n")
    assert build_key(module_dir=tmp_path) != first
    assert first.startswith(f"v{PULUMI_VERSION}-")


def test_project_env_defaults_and_user_choices(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "bin", PULUMI_VERSION, "cache")
    env = project_env(engine, base={"PATH": "/usr/bin"}, state_dir=tmp_path / "state")
    assert env["PATH"].split(":")[0] == str(tmp_path / "bin")
    assert env["PULUMI_BACKEND_URL"] == f"file://{tmp_path / 'state'}"
    assert env["PULUMI_CONFIG_PASSPHRASE"] == DEFAULT_PASSPHRASE
    assert (tmp_path / "state").is_dir()

    mine = project_env(engine, base={"PULUMI_BACKEND_URL": "s3://bucket", "PULUMI_CONFIG_PASSPHRASE_FILE": "/p"})
    assert mine["PULUMI_BACKEND_URL"] == "s3://bucket"
    assert "PULUMI_CONFIG_PASSPHRASE" not in mine


FAKE_GO = """#!/bin/sh
# A stand-in for `go` that builds in a second: what engine/build.py runs, and a count of the builds.
case "$1" in
  env) echo go1.25.0 ;;
  list) echo "$FAKE_SDK" ;;
  build)
    while [ "$1" != "-o" ]; do shift; done
    echo build >> "$FAKE_GO_LOG"
    sleep 1
    printf '#!/bin/sh\\necho v%s\\n' "$FAKE_VERSION" > "$2"
    chmod +x "$2" ;;
esac
"""


def test_two_setups_at_once_share_one_build(isolated: Path) -> None:
    """Two `./dev setup` at once on a fresh machine (two CI jobs on one runner): one builds, the other waits and
    uses that build, instead of building too and failing with `Directory not empty` when it renames it in."""
    sdk = isolated / "sdk"
    for rel in ("python/dist/pulumi-resource-pulumi-python", "python/cmd/pulumi-language-python-exec"):
        (sdk / rel).parent.mkdir(parents=True, exist_ok=True)
        (sdk / rel).write_text("#!/bin/sh\n")
    tools = isolated / "tools"
    tools.mkdir()
    (tools / "go").write_text(FAKE_GO)
    (tools / "go").chmod(0o755)
    env = {"PATH": f"{tools}:/usr/bin:/bin", "VASTGUARD_CACHE_DIR": str(isolated / "cache"),
           "FAKE_SDK": str(sdk), "FAKE_GO_LOG": str(isolated / "builds.log"), "FAKE_VERSION": PULUMI_VERSION,
           "HOME": str(isolated)}
    setups = [subprocess.Popen([sys.executable, "-m", "engine", "ensure"], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in setups]
    assert [proc.returncode for proc in setups] == [0, 0], outputs
    said = sorted(out + err for out, err in outputs)
    assert any("(built)" in text for text in said) and any("(cache)" in text for text in said), said
    # two binaries of one build (pulumi, the language host), not two builds
    assert (isolated / "builds.log").read_text().count("build") == 2
