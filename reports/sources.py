"""Where stack history comes from: the reports' I/O, kept apart from the pure folding.

- `DiyHistory` reads a DIY backend's files directly, from a local directory (`file://`), an S3-compatible
  bucket (`s3://`, reports/s3.py) or an Azure Blob container (`azblob://`, reports/azblob.py), all through the
  small `Bucket` interface: list keys, read a key. Direct reading is the
  only way to get the checkpoint of every past update from a DIY backend: `pulumi stack export --version`
  answers "the current backend does not provide the ability to export previous deployments" there.
- `CliHistory` goes through the Pulumi CLI for backends we cannot read as files (Pulumi Cloud):
  `pulumi stack history --json` pages the records and `pulumi stack export --version N` returns each
  update's checkpoint.

Both yield `HistoryEntry` objects oldest first, lazily, so a long history streams through the fold.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from fleet.budget_log import (
    ACTIONS,
    GUARD,
    LEDGER,
    GuardRecord,
    InstanceAction,
    Transfer,
    read_guard_records,
    read_transfers,
)
from reports.pulumi_state import (
    STACK_TYPE,
    CheckpointParser,
    HistoryEntry,
    Snapshot,
    UpdateRecord,
    decode_bytes,
    parse_update,
)

HISTORY_FILE = re.compile(
    r"^(?P<stack>.+)-(?P<nanos>\d+)\.(?P<what>history|checkpoint)\.json(?:\.gz|\.zst)?$"
)
STACK_FILE = re.compile(r"^(?P<stack>[^/]+)\.json(?:\.gz|\.zst)?$")


class SourceError(RuntimeError):
    """The history cannot be read; the message says where and what to do."""


def missing_extra(what: str, extra: str, package: str) -> SourceError:
    """Cloud backends' SDKs are optional extras, imported only when such a backend is read."""
    return SourceError(f"reading {what} backends needs {package}, which is not installed: "
                       f"pip install 'vastguard[{extra}]' (./dev setup installs every extra)")


@dataclass(frozen=True, order=True)
class StackRef:
    project: str
    stack: str

    def __str__(self) -> str:
        return f"{self.project}/{self.stack}" if self.project else self.stack


class HistorySource(Protocol):
    url: str

    def stacks(self) -> list[StackRef]: ...

    def count(self, ref: StackRef) -> int:
        """How many entries `entries(ref)` will yield (for a progress bar)."""
        ...

    def entries(self, ref: StackRef) -> Iterator[HistoryEntry]: ...

    def guard_actions(self) -> list[InstanceAction]:
        """The budget guard's stops and starts recorded next to the stacks' state (fleet/budget_log.py)."""
        ...

    def budget_records(self) -> tuple[list[Transfer], list[tuple[str, GuardRecord]]]:
        """The ledger's transfers and the guard's claims (fleet/budget_log.py), for the audit."""
        ...


class Bucket(Protocol):
    parallelism: int

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, recursively, relative to the bucket root."""
        ...

    def read(self, key: str) -> bytes: ...

    def create(self, key: str, data: bytes) -> bool:
        """Write a new object (False, and nothing written, when `key` exists). The reports only read; budget
        enforcement keeps its records next to the stacks' state through this (fleet/budget_log.py)."""
        ...


class LocalBucket:
    """A local directory as a bucket (`file://` backends). Pulumi's file blob driver writes an `.attrs` file
    beside every object; those are not objects and are skipped."""

    parallelism = 1  # parsing, not reading, dominates on a local disk

    def __init__(self, root: Path) -> None:
        self.root = root

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        keys: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            keys.extend(f"{rel}/{name}" for name in files
                        if not name.endswith(".attrs") and not name.startswith(".create-"))
        return keys

    def read(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except OSError as err:
            raise SourceError(f"cannot read {self.root / key}: {err.strerror}") from None

    def create(self, key: str, data: bytes) -> bool:
        """Write `key` only if it does not exist; False when it did. Written whole to a temporary file, then
        hard-linked into place: the link fails if the name exists, so two writers never both succeed and a
        reader never sees half an object."""
        path = self.root / key
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".create-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return False
            finally:
                os.unlink(tmp)
        except OSError as err:
            raise SourceError(f"cannot write {path}: {err.strerror}") from None
        return True


@dataclass(frozen=True)
class _Files:
    nanos: int
    history: str
    checkpoint: str | None


def _prefetch(items: Sequence[_Files], load: Callable[[_Files], tuple[bytes, bytes | None]],
              parallelism: int) -> Iterator[tuple[_Files, bytes, bytes | None]]:
    """Read ahead up to `parallelism` entries (S3 latency), yielding in order and holding at most that many."""
    if parallelism <= 1:
        for item in items:
            yield (item, *load(item))
        return
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        window: deque[tuple[_Files, Future[tuple[bytes, bytes | None]]]] = deque()
        for item in items:
            window.append((item, pool.submit(load, item)))
            if len(window) >= parallelism:
                first, future = window.popleft()
                yield (first, *future.result())
        while window:
            first, future = window.popleft()
            yield (first, *future.result())


class DiyHistory:
    """A DIY backend's `.pulumi/` tree, in either layout: project-scoped (`meta.yaml` version 1, the default
    since Pulumi 3.61: `stacks/<project>/<stack>.json`, `history/<project>/<stack>/`) or legacy
    (`stacks/<stack>.json`, `history/<stack>/`, project unknown)."""

    def __init__(self, url: str, bucket: Bucket) -> None:
        self.url = url
        self.bucket = bucket
        self._listing: dict[StackRef, list[_Files]] | None = None

    def _project_mode(self) -> bool:
        try:
            meta = self.bucket.read(".pulumi/meta.yaml").decode()
        except (SourceError, OSError, RuntimeError):
            return False
        match = re.search(r"^version:\s*(\d+)", meta, re.MULTILINE)
        return bool(match and int(match.group(1)) >= 1)

    def _list(self) -> dict[StackRef, list[_Files]]:
        if self._listing is not None:
            return self._listing
        project_mode = self._project_mode()
        groups: dict[StackRef, dict[int, dict[str, str]]] = {}
        for key in self.bucket.list(".pulumi/history/"):
            parts = key.split("/")
            # .pulumi/history/<project>/<stack>/<file>  or  .pulumi/history/<stack>/<file>
            if project_mode and len(parts) == 5:
                ref, name = StackRef(parts[2], parts[3]), parts[4]
            elif not project_mode and len(parts) == 4:
                ref, name = StackRef("", parts[2]), parts[3]
            else:
                continue
            match = HISTORY_FILE.match(name)
            if match is None or match["stack"] != ref.stack:
                continue
            groups.setdefault(ref, {}).setdefault(int(match["nanos"]), {})[match["what"]] = key
        for key in self.bucket.list(".pulumi/stacks/"):
            parts = key.split("/")
            if project_mode and len(parts) == 4 and (m := STACK_FILE.match(parts[3])):
                groups.setdefault(StackRef(parts[2], m["stack"]), {})
            elif not project_mode and len(parts) == 3 and (m := STACK_FILE.match(parts[2])):
                groups.setdefault(StackRef("", m["stack"]), {})
        self._listing = {
            ref: [_Files(nanos, files["history"], files.get("checkpoint"))
                  for nanos, files in sorted(by_nanos.items()) if "history" in files]
            for ref, by_nanos in sorted(groups.items())
        }
        return self._listing

    def stacks(self) -> list[StackRef]:
        return list(self._list())

    def count(self, ref: StackRef) -> int:
        return len(self._list().get(ref, []))

    def _load(self, files: _Files) -> tuple[bytes, bytes | None]:
        history = self.bucket.read(files.history)
        checkpoint = self.bucket.read(files.checkpoint) if files.checkpoint else None
        return history, checkpoint

    def guard_actions(self) -> list[InstanceAction]:
        out = []
        for key in self.bucket.list(f"{ACTIONS}/"):
            if key.endswith(".json"):
                try:
                    out.append(InstanceAction.model_validate(json.loads(self.bucket.read(key))))
                except (ValueError, ValidationError) as err:
                    raise SourceError(f"{key}: not a budget guard record ({str(err).splitlines()[0]})") from None
        return out

    def budget_records(self) -> tuple[list[Transfer], list[tuple[str, GuardRecord]]]:
        try:
            return (read_transfers(self.bucket.list(f"{LEDGER}/"), self.bucket.read),
                    read_guard_records(self.bucket.list(f"{GUARD}/"), self.bucket.read))
        except (ValueError, ValidationError) as err:
            raise SourceError(f"the budget log in {self.url} does not parse ({str(err).splitlines()[0]})") from None

    def entries(self, ref: StackRef) -> Iterator[HistoryEntry]:
        files = self._list().get(ref, [])
        parser = CheckpointParser()
        for sequence, (item, history, checkpoint) in enumerate(
                _prefetch(files, self._load, self.bucket.parallelism), start=1):
            record = parse_update(decode_bytes(history, name=item.history), name=item.history)
            snapshot = None
            if checkpoint is not None and item.checkpoint is not None:
                snapshot = parser.checkpoint(decode_bytes(checkpoint, name=item.checkpoint), name=item.checkpoint)
            yield HistoryEntry(project=ref.project, stack=ref.stack, sequence=sequence, record=record,
                               snapshot=snapshot)


Runner = Callable[..., str]
"""Runs `pulumi <args...>` (with `--stack` given as a keyword) and returns its stdout; raises on failure."""


class CliHistory:
    """History through the Pulumi CLI, for backends whose files we cannot read (Pulumi Cloud)."""

    page_size = 100

    def __init__(self, url: str, run: Runner, *, stack_names: Sequence[str] = ()) -> None:
        self.url = url
        self._run = run
        self._stack_names = list(stack_names)
        self._records: dict[StackRef, list[UpdateRecord]] = {}

    def stacks(self) -> list[StackRef]:
        if self._stack_names:
            return [_cli_ref(name) for name in self._stack_names]
        listed = json.loads(self._run("stack", "ls", "--all", "--json"))
        return sorted(_cli_ref(str(item["name"])) for item in listed)

    def _history(self, ref: StackRef) -> list[UpdateRecord]:
        if ref not in self._records:
            records: list[UpdateRecord] = []
            page = 1
            while True:
                raw = json.loads(self._run("stack", "history", "--json", "--page-size", str(self.page_size),
                                           "--page", str(page), stack=_cli_name(ref)) or "[]")
                records.extend(parse_update(item, name=f"history of {ref}") for item in raw)
                if len(raw) < self.page_size:
                    break
                page += 1
            self._records[ref] = sorted(records, key=lambda r: (r.version, r.start_time))
        return self._records[ref]

    def count(self, ref: StackRef) -> int:
        return len(self._history(ref))

    def guard_actions(self) -> list[InstanceAction]:
        return []  # Pulumi Cloud holds no budget log: the guard keeps it in DIY backends only

    def budget_records(self) -> tuple[list[Transfer], list[tuple[str, GuardRecord]]]:
        return [], []

    def _snapshot(self, ref: StackRef, version: int, parser: CheckpointParser) -> Snapshot | None:
        if version <= 0:
            return None
        try:
            out = self._run("stack", "export", "--version", str(version), stack=_cli_name(ref))
        except RuntimeError:
            return None  # no checkpoint for this version: the event stays in the audit, flagged
        return parser.checkpoint(json.loads(out), name=f"{ref} version {version}")

    def entries(self, ref: StackRef) -> Iterator[HistoryEntry]:
        parser = CheckpointParser()
        for sequence, record in enumerate(self._history(ref), start=1):
            yield HistoryEntry(project=ref.project, stack=ref.stack, sequence=sequence, record=record,
                               snapshot=self._snapshot(ref, record.version, parser))


def _cli_ref(name: str) -> StackRef:
    parts = name.split("/")
    return StackRef("/".join(parts[:-1]), parts[-1])


def _cli_name(ref: StackRef) -> str:
    return f"{ref.project}/{ref.stack}" if ref.project else ref.stack


def _file_root(url: str) -> Path:
    return Path(os.path.expanduser(urllib.parse.unquote(url[len("file://"):].split("?", 1)[0])))


def open_bucket(url: str, *, bucket_factory: Callable[[str], Bucket] | None = None) -> Bucket | None:
    """The files of a DIY backend (`file://`, `s3://`, `azblob://`), or None for one read through the Pulumi CLI
    (Pulumi Cloud). Raises SourceError for a scheme nobody here reads."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        root = _file_root(url)
        if not (root / ".pulumi").is_dir():
            raise SourceError(f"no Pulumi state under {root} (expected {root / '.pulumi'}); "
                              "pass --backend file://DIR with the directory given to `pulumi login`")
        return LocalBucket(root)
    if parts.scheme in {"s3", "azblob"} and bucket_factory is not None:
        return bucket_factory(url)
    if parts.scheme == "s3":
        from reports.s3 import S3Bucket, S3Location

        return S3Bucket(S3Location.parse(url))
    if parts.scheme == "azblob":
        from reports.azblob import AzureBlobBucket, AzureLocation

        return AzureBlobBucket(AzureLocation.parse(url))
    if parts.scheme in {"https", "http"} or url == "":
        return None
    raise SourceError(
        f"backend {parts.scheme}:// is not supported by the reports (file://, s3://, azblob:// and Pulumi Cloud "
        "are); "
        "copy the state to a local directory with `pulumi stack export`/`import` or sync the bucket"
    )


def open_diy_bucket(url: str) -> Bucket:
    """The bucket of a DIY backend URL (file://, s3://, azblob://), whatever it holds yet (the budget log may be
    written before any stack is)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return LocalBucket(_file_root(url))
    bucket = open_bucket(url) if parts.scheme in {"s3", "azblob"} else None
    if bucket is None:
        raise SourceError(f"budget records live next to the stacks' state in a DIY backend (file://, s3://, "
                          f"azblob://); {parts.scheme or url}:// is not one: pass --backend with the bucket's URL")
    return bucket


def open_source(url: str, *, cli_runner: Runner | None = None,
                bucket_factory: Callable[[str], Bucket] | None = None) -> HistorySource:
    """Pick the reader for a backend URL (Pulumi's `PULUMI_BACKEND_URL` syntax)."""
    bucket = open_bucket(url, bucket_factory=bucket_factory)
    if bucket is not None:
        return DiyHistory(url, bucket)
    if cli_runner is None:
        raise SourceError(f"{url or 'Pulumi Cloud'} is read through the Pulumi CLI, which is not available here")
    return CliHistory(url, cli_runner)


def stack_outputs(url: str, project: str, stack: str, *, cli_runner: Runner | None = None,
                  bucket_factory: Callable[[str], Bucket] | None = None) -> dict[str, Any]:
    """A stack's current outputs (its `pulumi:pulumi:Stack` resource's, in the latest checkpoint), read without
    decrypting anything: plain outputs in the clear, secret ones as Pulumi's ciphertext objects.

    On a DIY backend the checkpoint is read as a file, so a reader needs only read access to the bucket, never
    the stack's passphrase (`pulumi stack output` would want it to load the stack). Pulumi Cloud serves outputs
    through its CLI (`pulumi stack output --json`, secrets shown as `[secret]`)."""
    bucket = open_bucket(url, bucket_factory=bucket_factory)
    if bucket is None:
        if cli_runner is None:
            raise SourceError(f"{url or 'Pulumi Cloud'} is read through the Pulumi CLI, which is not available here")
        outputs = json.loads(cli_runner("stack", "output", "--json", stack=stack) or "{}")
        return outputs if isinstance(outputs, dict) else {}
    wanted = {f".pulumi/stacks/{project}/{stack}", f".pulumi/stacks/{stack}"}
    found = sorted(key for key in bucket.list(".pulumi/stacks/")
                   if (m := re.match(r"^(.*)\.json(?:\.gz|\.zst)?$", key)) and m.group(1) in wanted)
    if not found:
        raise SourceError(f"no stack {stack!r} of project {project!r} in {url}: deploy it first (`pulumi up "
                          f"--stack {stack}`), or check PULUMI_BACKEND_URL")
    key = ([k for k in found if k.startswith(f".pulumi/stacks/{project}/")] or found)[0]  # project mode first
    raw = decode_bytes(bucket.read(key), name=key)
    latest = (raw.get("checkpoint") or {}).get("latest") if isinstance(raw, dict) else None
    for resource in (latest or {}).get("resources") or ():
        if isinstance(resource, dict) and resource.get("type") == STACK_TYPE:
            outputs = resource.get("outputs") or {}
            return outputs if isinstance(outputs, dict) else {}
    return {}


def ensure_stacks(source: HistorySource, *, projects: Sequence[str] = (), stacks: Sequence[str] = ()) -> list[StackRef]:
    """The stacks to report on, filtered; an explicit filter matching nothing is an error, not an empty report."""
    refs = source.stacks()
    if projects:
        refs = [r for r in refs if r.project in projects]
    if stacks:
        refs = [r for r in refs if r.stack in stacks or str(r) in stacks]
    if (projects or stacks) and not refs:
        known = ", ".join(str(r) for r in source.stacks()) or "none"
        raise SourceError(f"no stack matches --project/--stack in {source.url}; stacks there: {known}")
    return refs

