"""Find or build the pinned Pulumi CLI and Python language host.

Order: a `pulumi` on PATH whose version is the pinned one (with its language host and dynamic-provider plugin
next to it); else a previous build in the cache (keyed by version and by the hash of the Go sources that define
it, so a second setup takes milliseconds); else `go build` of engine/go into that cache. Builds land in a
temporary directory and are renamed into place, so an interrupted build never leaves a half-filled cache entry,
and one build runs at a time per cache (a file lock), so concurrent setups share the first one's build.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.versions import GO_MIN_VERSION, PULUMI_VERSION

GO_MODULE_DIR = Path(__file__).resolve().parent / "go"
# The engine finds these by name on PATH; the two scripts ship inside the sdk/v3 Go module.
BINARIES = ("pulumi", "pulumi-language-python")
SDK_SCRIPTS = {
    "pulumi-resource-pulumi-python": "python/dist/pulumi-resource-pulumi-python",
    "pulumi-language-python-exec": "python/cmd/pulumi-language-python-exec",
}
REQUIRED = (*BINARIES, *SDK_SCRIPTS)
_VERSION_LDFLAG = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"


class EngineError(Exception):
    """The pinned engine can be neither found nor built; the message says what to install."""


@dataclass(frozen=True)
class Engine:
    bin_dir: Path
    version: str
    source: Literal["path", "cache", "built"]

    @property
    def pulumi(self) -> Path:
        return self.bin_dir / "pulumi"


def cache_root() -> Path:
    explicit = os.environ.get("VASTGUARD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vastguard"


def build_key(version: str = PULUMI_VERSION, module_dir: Path = GO_MODULE_DIR) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in module_dir.rglob("*") if p.is_file() and p.suffix in {".go", ".mod", ".sum"}):
        digest.update(path.relative_to(module_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return f"v{version}-{digest.hexdigest()[:12]}"


def reported_version(pulumi: Path) -> str | None:
    """What `pulumi version` prints, without the leading v; None if it cannot run."""
    try:
        out = subprocess.run(
            [str(pulumi), "version"], capture_output=True, text=True, timeout=60, check=True,
            env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().removeprefix("v") or None


def _complete(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in REQUIRED)


def from_path(version: str = PULUMI_VERSION) -> Engine | None:
    found = shutil.which("pulumi")
    if not found:
        return None
    bin_dir = Path(found).resolve().parent
    if not _complete(bin_dir) or reported_version(bin_dir / "pulumi") != version:
        return None
    return Engine(bin_dir, version, "path")


def go_version(go: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"go(\d+)\.(\d+)", out.strip())
    return (int(match[1]), int(match[2])) if match else None


def _missing_toolchain_message(reason: str) -> str:
    want_go = ".".join(map(str, GO_MIN_VERSION))
    return (
        f"cannot provide the Pulumi engine v{PULUMI_VERSION}: {reason}.\n"
        f"Fix one of:\n"
        f"  - install Go >= {want_go} (https://go.dev/dl/) and rerun ./dev setup: it builds the pinned engine "
        f"from the Go module proxy into {cache_root()}; or\n"
        f"  - install Pulumi CLI v{PULUMI_VERSION} (with pulumi-language-python and "
        f"pulumi-resource-pulumi-python beside it) and put it first on PATH."
    )


def _run_go(args: list[str], env: dict[str, str], log: Callable[[str], None]) -> str:
    proc = subprocess.run(args, cwd=GO_MODULE_DIR, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        command = " ".join(args)
        raise EngineError(f"`{command}` failed (exit {proc.returncode}) in {GO_MODULE_DIR}:\n{proc.stderr.strip()}")
    return proc.stdout


def build(dest: Path, *, go: str, version: str = PULUMI_VERSION, log: Callable[[str], None] = print) -> None:
    """Build the engine into dest (which must not exist yet)."""
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    ldflags = f"-s -w -X {_VERSION_LDFLAG}=v{version}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".building-") as tmp:
        staging = Path(tmp) / "bin"
        staging.mkdir()
        log(f"building Pulumi CLI v{version} from the Go module proxy (first time only; a few minutes)...")
        _run_go([go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(staging / "pulumi"),
                 "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"], env, log)
        log("building the Python language host...")
        _run_go([go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(staging / "pulumi-language-python"),
                 "./cmd/pulumi-language-python"], env, log)
        sdk_dir = Path(_run_go([go, "list", "-m", "-f", "{{.Dir}}", "github.com/pulumi/pulumi/sdk/v3"], env, log)
                       .strip())
        for name, rel in SDK_SCRIPTS.items():
            shutil.copyfile(sdk_dir / rel, staging / name)
            (staging / name).chmod(0o755)
        if reported_version(staging / "pulumi") != version:
            raise EngineError(f"the freshly built pulumi does not report v{version}; see {staging}")
        staging.rename(dest)


@contextmanager
def _build_lock(cache: Path) -> Iterator[None]:
    """One build of the engine at a time per cache: two `./dev setup` at once on a fresh machine (two CI jobs on
    one runner) would otherwise both build for minutes, and the second's rename into place would fail with
    `Directory not empty` on the first's finished entry. The second waits, then finds that entry complete."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure(*, log: Callable[[str], None] = print, use_path: bool = True) -> Engine:
    if use_path and (engine := from_path()):
        return engine
    bin_dir = cache_root() / "engine" / build_key() / "bin"
    if _complete(bin_dir):
        return Engine(bin_dir, PULUMI_VERSION, "cache")
    with _build_lock(cache_root() / "engine"):
        if _complete(bin_dir):  # built by another setup while this one waited
            return Engine(bin_dir, PULUMI_VERSION, "cache")
        return _build_into(bin_dir, log)


def _build_into(bin_dir: Path, log: Callable[[str], None]) -> Engine:
    go = shutil.which("go")
    if go is None:
        raise EngineError(_missing_toolchain_message("no matching `pulumi` on PATH and `go` is not installed"))
    have = go_version(go)
    if have is None or have < GO_MIN_VERSION:
        found = ".".join(map(str, have)) if have else "unknown"
        raise EngineError(_missing_toolchain_message(f"`go` is version {found}, too old to build it"))
    if bin_dir.exists():  # an incomplete entry from an older, interrupted layout
        shutil.rmtree(bin_dir)
    build(bin_dir, go=go, log=log)
    return Engine(bin_dir, PULUMI_VERSION, "built")
