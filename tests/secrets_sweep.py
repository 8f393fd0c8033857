"""Secrets sweep (issue 8): after the test session, no team API key may be anywhere a person or a log shipper
could read it: the Pulumi state of every file backend the tests made (stacks, history, checkpoints, backups),
Pulumi homes and their engine logs, workspaces, captured output, failure reports and exception texts.

A pytest plugin, registered by `tests/conftest.py`. During the session it records

- every key an emulator holds, at the one place all of them pass through, `MarketBackend.store_key`: an account's
  main key (the in-process `EmulatorServer.create_account`, `emulator.testing.make_account` and the control
  plane's `POST /_emulator/accounts` all end there), a key the emulator mints for `POST /api/v0/auth/apikeys/`, and
  a team key seeded through `POST /_emulator/teams/{id}/keys`. Child Python processes (`vastguard demo`,
  `python -m emulator`) make theirs out of reach, so the session puts a `sitecustomize` on their PYTHONPATH that
  wraps the same method there and sends each key back over a Unix datagram socket: memory only, never a file;
- the salt of every stack a `Workspace` initialises (in this process and in children): Pulumi 3.259 writes its
  engine debug logs to `$PULUMI_HOME/logs` encrypted with the stack's passphrase key, and a stack whose workspace
  is gone by the end (the demo removes `.demo/`) could not be decrypted otherwise;
- every test report's captured stdout/stderr/log sections and its failure/skip text (longrepr), collection
  errors, recorded warnings (thread and unraisable exceptions among them), and `str()`/`repr()`/notes of every
  exception a test catches with `pytest.raises` (and its `__cause__`/`__context__` chain).

At the end it scans every file under the session's basetemp, the repo's `.pulumi-state/` and `.demo/` (the
engine's and the demo's default locations) and files under the default Pulumi home (`~/.pulumi`) changed during
the session, plus all recorded texts, for each key, its base64 (both alphabets, all three alignments, so a key
inside a longer encoded blob is found too) and its URL- and JSON-escaped forms. Gzip files are also scanned
decompressed; Pulumi's encrypted `PLOG` logs are decrypted first. A leak prints where it is and the key's
fingerprint (a short SHA-256 prefix, never the key), and fails the session.

Pulumi's engine logs every property at debug level, the stack's config included, so the key is in every
decrypted log of an engine run: inside its secret envelope (which `pulumi logs share` redacts), and bare in the
record the engine writes for the secret's inner value as it marshals it to a provider or the program (which
`pulumi logs share` does not redact). Both are reported in the summary and allowed,
because the log is encrypted with the stack's own passphrase key, as the key's `secure:` config value is;
`--secrets-sweep-strict` fails on them. Anywhere else in a decrypted log (a message, a provider's stderr, a
property that is not secret) the key is a leak.

Not covered (said again in the summary where it applies): exceptions caught by plain `try/except` in tests or
code and never rendered; output printed with capture disabled (`-s`); files outside the roots above (the system
temp dir, other tests' working directories); keys never given to an emulator (the client tests' scripted key);
S3 backend objects of the moto server in `tests/e2e/test_s3_backend.py` (in its memory, gone with it); tmp dirs
already removed by a `tmp_path_retention_policy` other than `all`.

`record_api_key(key)` adds a key made without an emulator account, `record_passphrase(passphrase, salt)` a stack's
own passphrase; `-p no:tests.secrets_sweep` turns the sweep off.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import fnmatch
import functools
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

PLUGIN_NAME = "vastguard-secrets-sweep"
SOCKET_ENV = "VASTGUARD_SECRETS_SWEEP_SOCKET"

# Keys shorter than this are not swept. All the keys the suite issues at random are longer: `new_api_key()` is
# 36 characters, the e2e fixtures' `<team>-<32 hex>` 40+, the demo's `token_urlsafe(24)` 32. The short ones are
# fixed strings the emulator's own tests spell out in their source ("k", "alice-key", "key-0-100",
# "team-key-0001", "persisted-key-0001"): pytest prints those source lines in any failure report, "k" occurs in
# nearly every file, and a fixed string written in the repo is not a secret that could leak.
MIN_KEY_LENGTH = 20

# A file bigger than this is not read (and is named in the summary): the suite writes nothing near it, and
# reading a stray multi-GB file would stall the end of every run.
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class AllowedFile:
    """A file that holds a key by design, so a key in it is not a leak."""

    pattern: str  # fnmatch glob on the path relative to its scan root, '/'-separated
    reason: str


# Found by running the suite parts that create files (emulator, client, e2e, ci): none holds a key of the length
# swept. The emulator's state file holds only SHA-256 digests of keys (emulator/persistence.py); the one input
# file that holds a key on purpose, `--accounts-file` in tests/emulator/test_main.py, is Vast's side (its user
# database) and carries a short fixed key. An entry here must say why the file may hold a key.
ALLOWED_FILES: tuple[AllowedFile, ...] = (
    AllowedFile("test_runs_prints_url_and_sto*/accounts.json",
                "`python -m emulator --accounts-file`: the emulator's own account list, Vast's side of the key"),
)


def fingerprint(key: str) -> str:
    """Names a key in a report without revealing it (the emulator keeps the full SHA-256 as the account's id)."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _base64_fragments(raw: bytes) -> Iterator[bytes]:
    """The part of `raw`'s base64 that is the same wherever `raw` sits in a longer encoded blob: one per
    alignment (offset 0, 1, 2 in its 3-byte group), without the edge characters that mix in neighbouring bytes."""
    for offset, skip in ((0, 0), (1, 2), (2, 3)):
        data = bytes(offset) + raw
        whole_groups = len(data) // 3 * 4
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            yield encode(data)[skip:whole_groups]


def key_forms(key: str) -> dict[bytes, str]:
    """The byte strings a key can take in a file or text, each with the name a report gives it."""
    raw = key.encode()
    forms: dict[bytes, str] = {raw: "raw"}
    for escaped in (quote(key, safe=""), quote_plus(key)):
        for variant in (escaped, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), escaped)):
            forms.setdefault(variant.encode(), "url-encoded")
    forms.setdefault(json.dumps(key)[1:-1].encode(), "json-escaped")
    for fragment in _base64_fragments(raw):
        # A fragment this short could occur by chance; MIN_KEY_LENGTH keeps real ones at 20+ characters.
        if len(fragment) >= 16:
            forms.setdefault(fragment, "base64")
    return forms


def _trie_regex(words: Iterable[bytes]) -> re.Pattern[bytes]:
    """One regex matching any of `words`, as a prefix tree: Python's `re` tries a plain alternation's branches
    one by one at every position (under 1 MB/s with a few hundred keys), a tree of them at ~100 MB/s."""
    root: dict[int, Any] = {}
    end = -1
    for word in words:
        node = root
        for byte in word:
            node = node.setdefault(byte, {})
        node[end] = True

    def emit(node: dict[int, Any]) -> bytes:
        branches = [re.escape(bytes([byte])) + emit(child) for byte, child in node.items() if byte != end]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        if end in node:
            return b"(?:" + body + b")?"
        return body

    return re.compile(emit(root))


class KeyMatcher:
    """Finds any form of any of the keys in a byte string."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.forms: dict[bytes, tuple[str, str]] = {}
        for key in keys:
            for form, name in key_forms(key).items():
                self.forms.setdefault(form, (key, name))
        self.pattern = _trie_regex(self.forms) if self.forms else None

    def find(self, data: bytes) -> list[tuple[str, str]]:
        """(key, form name) of each distinct match."""
        if self.pattern is None:
            return []
        found: dict[tuple[str, str], None] = {}
        for match in self.pattern.finditer(data):
            hit = self.forms.get(match.group(0))
            if hit is not None:
                found[hit] = None
        return list(found)


# -- Pulumi's encrypted engine logs (pkg/v3/engine/encryptedlog, v3.259.0) -------------------------------------

SALT_STATE = re.compile(rb"v1:[A-Za-z0-9+/]+=*:v1:[A-Za-z0-9+/]+=*:[A-Za-z0-9+/]+=*")
PLOG_MAGIC = b"PLOG"
GZIP_MAGIC = b"\x1f\x8b"


def passphrase_key(passphrase: str, salt_state: str) -> bytes:
    """The stack's AES key: PBKDF2-SHA256, 1,000,000 rounds, over the salt in `encryptionsalt: v1:<salt>:...`."""
    salt = base64.b64decode(salt_state.split(":")[1])
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, 1_000_000, 32)


def _gcm_open(key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key).decrypt(nonce, ciphertext, None)


def _open_passphrase_value(key: bytes, value: bytes) -> bytes:
    """A value of Pulumi's passphrase crypter: `v1:<nonce b64>:<ciphertext b64>` (AES-256-GCM)."""
    version, nonce, ciphertext = value.split(b":")
    if version != b"v1":
        raise ValueError("unknown value version")
    return _gcm_open(key, base64.b64decode(nonce), base64.b64decode(ciphertext))


def plog_session_key_box(data: bytes) -> tuple[bytes, int]:
    """The encrypted session key of a PLOG file and where its chunks start.
    Layout: "PLOG", version 1, key length (u16 BE), encrypted key; then chunks."""
    if data[:4] != PLOG_MAGIC or data[4:5] != b"\x01":
        raise ValueError("not a version-1 PLOG file")
    (length,) = struct.unpack(">H", data[5:7])
    return data[7:7 + length], 7 + length


def plog_plaintext(data: bytes, session_key: bytes, start: int) -> bytes:
    """Chunks: payload length (u32 BE), then 12-byte nonce + AES-256-GCM ciphertext of a gzip member. A chunk
    cut short (a killed `pulumi up`) ends the log, as it does for Pulumi's reader."""
    out: list[bytes] = []
    pos = start
    while pos + 4 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        payload = data[pos + 4:pos + 4 + length]
        if len(payload) < length or length < 28:
            break
        out.append(gzip.decompress(_gcm_open(session_key, payload[:12], payload[12:])))
        pos += 4 + length
    return b"".join(out)


class PlogDecrypter:
    """Decrypts the PLOG logs of stacks whose salt was seen, trying each candidate passphrase; keys are derived
    lazily (about half a second each), one per core at a time (hashlib's PBKDF2 runs without the GIL)."""

    def __init__(self, passphrases: Iterable[str]) -> None:
        self.passphrases = list(dict.fromkeys(passphrases))
        self.salts: dict[str, None] = {}
        self._derived: dict[tuple[str, str], bytes] = {}

    def add_salt(self, state: str) -> None:
        self.salts.setdefault(state, None)

    def _open_session_key(self, box: bytes, keys: Iterable[bytes]) -> bytes | None:
        for key in keys:
            with contextlib.suppress(Exception):
                return _open_passphrase_value(key, box)
        return None

    def decrypt(self, data: bytes) -> bytes | None:
        box, start = plog_session_key_box(data)
        # A wrong key fails GCM's tag check in microseconds: every key derived so far is tried before a new one.
        session_key = self._open_session_key(box, list(self._derived.values()))
        pending = [(p, s) for s in self.salts for p in self.passphrases if (p, s) not in self._derived]
        if session_key is None and pending:
            workers = os.cpu_count() or 2
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for batch_start in range(0, len(pending), workers):
                    batch = pending[batch_start:batch_start + workers]
                    for pair, key in zip(batch, pool.map(lambda ps: passphrase_key(*ps), batch), strict=True):
                        self._derived[pair] = key
                    session_key = self._open_session_key(box, (self._derived[pair] for pair in batch))
                    if session_key is not None:
                        break
        if session_key is None:
            return None
        return plog_plaintext(data, session_key, start)


@dataclass(frozen=True)
class Leak:
    where: str
    key_fingerprint: str
    form: str


# Where a key may sit inside Pulumi's encrypted engine logs without failing the sweep (unless
# --secrets-sweep-strict): these logs are AES-GCM encrypted with the stack's passphrase key, the same protection
# as the key's own `secure:` value in Pulumi.<stack>.yaml, and hold it because Pulumi logs every property value
# at debug level. Any other place in a decrypted log (a message, a provider's stderr, a non-secret property)
# is a leak.
ENGINE_LOG_SECRET = "inside a secret in an engine property dump (`pulumi logs share` redacts it)"
ENGINE_LOG_UNWRAPPED = ("bare, in the engine's debug record of a secret's inner value "
                        "(Pulumi 3.259; NOT redacted by `pulumi logs share`)")


# In the engine log, property values are JSON-encoded bytes (base64) of "pulumiPv" + a protobuf
# google.protobuf.Value (sdk/go/common/util/logging/log_value.go); a secret is the object
# {SIG_KEY: SECRET_SIG, "value": ...}, which `pulumi logs share` redacts (pkg/cmd/pulumi/logs/redact.go).
PROPERTY_DUMP = re.compile(rb"cHVsdW1pUHY[A-Za-z0-9+/]*={0,2}")
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _proto_fields(buf: bytes) -> Iterator[tuple[int, bytes]]:
    """(field number, payload) of the length-delimited fields; the others are skipped."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        wire_type = tag & 7
        if wire_type == 0:
            _, pos = _varint(buf, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == 2:
            length, pos = _varint(buf, pos)
            yield tag >> 3, buf[pos:pos + length]
            pos += length
        else:
            raise ValueError(f"unexpected protobuf wire type {wire_type}")


def decode_log_value(buf: bytes) -> object:
    """A google.protobuf.Value as Python data: 3 string, 5 struct (1: entries of 1 key, 2 value), 6 list."""
    for number, payload in _proto_fields(buf):
        if number == 3:
            return payload.decode("utf-8", "surrogateescape")
        if number == 5:
            entries: dict[str, object] = {}
            for _, entry in _proto_fields(payload):
                parts = dict(_proto_fields(entry))
                entries[parts.get(1, b"").decode("utf-8", "surrogateescape")] = decode_log_value(parts.get(2, b""))
            return entries
        if number == 6:
            return [decode_log_value(item) for _, item in _proto_fields(payload)]
    return None


def split_secret_strings(value: object, in_secret: bool = False) -> Iterator[tuple[str, bool]]:
    """Every string in `value`, and whether it sits inside a secret (where `pulumi logs share` redacts it)."""
    if isinstance(value, dict):
        secret = in_secret or value.get(SIG_KEY) == SECRET_SIG
        for name, item in value.items():
            yield name, in_secret
            yield from split_secret_strings(item, secret)
    elif isinstance(value, list):
        for item in value:
            yield from split_secret_strings(item, in_secret)
    elif isinstance(value, str):
        yield value, in_secret


MARSHALING = "Marshaling property for RPC"
MARSHALING_BYTES = MARSHALING.encode()
UNMARSHALING = "Unmarshaling property for RPC"
UNMARSHALING_BYTES = UNMARSHALING.encode()


def _unmarshaled_sig(record: dict[str, Any]) -> tuple[str, bool]:
    """(label, whether this Unmarshaling record is a secret's signature): the engine reads a secret in a provider's
    response as the object {SIG_KEY: SECRET_SIG, "value": v}, logging SIG_KEY, then "value" (v bare), then the
    secret as a whole."""
    value = record.get("pulumi.log.arg2")
    return (str(record.get("pulumi.log.arg0", "")),
            record.get("pulumi.log.arg1") == SIG_KEY and isinstance(value, dict) and value.get("V") == SECRET_SIG)


def go_secret_strings(value: object, in_secret: bool = False) -> Iterator[tuple[str, bool]]:
    """Every string in the engine's JSON dump of a Go `resource.PropertyValue` (what it logs as it unmarshals a
    provider's response, sdk/go/common/resource/plugin/rpc.go), and whether it sits in a secret: a secret is
    `resource.Secret{Element: v}`, dumped as {"V": {"Element": v}}; a plain string is {"V": "..."}."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield name, in_secret
            yield from go_secret_strings(item, in_secret or name == "Element")
    elif isinstance(value, list):
        for item in value:
            yield from go_secret_strings(item, in_secret)
    elif isinstance(value, str):
        yield value, in_secret
LABEL_FIELD = re.compile(rb'"pulumi\.log\.arg0":("(?:[^"\\]|\\.)*")')


def _marshaled(record: dict[str, Any]) -> tuple[str, str, object] | None:
    """(label, property name, value) of the engine's per-property debug record, else None."""
    if not str(record.get("msg", "")).startswith(MARSHALING):
        return None
    dump = str(record.get("pulumi.log.arg2", "")).encode()
    try:
        value = decode_log_value(base64.b64decode(dump)[8:]) if PROPERTY_DUMP.fullmatch(dump) else None
    except (ValueError, IndexError):
        value = None
    return str(record.get("pulumi.log.arg0", "")), str(record.get("pulumi.log.arg1", "")), value


def engine_log_findings(where: str, plain: bytes, matcher: KeyMatcher) -> Iterator[tuple[Leak, str | None]]:
    """Each key found in a decrypted engine log, with the reason it may be there (ENGINE_LOG_SECRET,
    ENGINE_LOG_UNWRAPPED) or None for a leak. A leak names the record's message template and field.

    The engine marshals a secret for a provider as the object {SIG_KEY: SECRET_SIG, "value": v} and logs each
    property of it in turn (sdk/go/common/resource/plugin/rpc.go): the record of "value" holds the key bare right
    after the record of SIG_KEY under the same label. Only a "value" record right after its SIG_KEY record counts
    as unwrapped; so does a key inside a secret of a provider's response as the engine unmarshals it (the
    platform's `vastai:ApiKey` returns each key it makes as a secret: `go_secret_strings`). A bare key anywhere
    else, a plain `key` output among them, is a leak."""
    sig_last: dict[str, bool] = {}  # label -> was the last property marshaled under it a secret's signature
    unsig_last: dict[str, bool] = {}  # the same for the engine's reading of a provider's response
    for line in plain.splitlines():
        if not matcher.find(line):  # the key's base64 forms find it inside property dumps too
            # Most lines: only the marshaling order matters, and parsing JSON only when it must keeps a
            # suite's worth of logs (tens of MB) to seconds.
            if UNMARSHALING_BYTES in line:
                with contextlib.suppress(ValueError):
                    label, is_sig = _unmarshaled_sig(json.loads(line))
                    unsig_last[label] = is_sig
            elif MARSHALING_BYTES in line:
                if SIG_KEY.encode() not in line:
                    label_field = LABEL_FIELD.search(line)
                    sig_last[json.loads(label_field.group(1)) if label_field else ""] = False
                else:
                    with contextlib.suppress(ValueError):
                        marshaled = _marshaled(json.loads(line))
                        if marshaled is not None:
                            sig_last[marshaled[0]] = marshaled[1] == SIG_KEY and marshaled[2] == SECRET_SIG
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            yield from ((Leak(f"{where}: a line that is not JSON", fingerprint(key), form), None)
                        for key, form in matcher.find(line))
            continue
        marshaled = _marshaled(record)
        unwrapped = False
        if marshaled is not None:
            label, name, value = marshaled
            unwrapped = name == "value" and sig_last.get(label, False)
            sig_last[label] = name == SIG_KEY and value == SECRET_SIG
        msg = str(record.get("msg", ""))[:80]
        shown = "(a message holding the key)" if matcher.find(msg.encode()) else repr(msg)
        unmarshaled = record.get("pulumi.log.arg2") if msg.startswith(UNMARSHALING) else None
        inner = False
        if msg.startswith(UNMARSHALING):
            label, is_sig = _unmarshaled_sig(record)
            inner = record.get("pulumi.log.arg1") == "value" and unsig_last.get(label, False)
            unsig_last[label] = is_sig
        for name, field_value in record.items():
            if name == "pulumi.log.arg2" and isinstance(unmarshaled, dict):
                # A provider's response as the engine read it: the key inside a secret's Element, or as the "value"
                # right after a secret's signature, is the engine's record of a secret's inner value (a provider
                # returned it as a secret); anywhere else, a leak.
                for string, in_secret in go_secret_strings(unmarshaled, inner):
                    for key, form in matcher.find(string.encode("utf-8", "surrogateescape")):
                        yield (Leak(f"{where}: record {shown}, field {name!r}", fingerprint(key), form),
                               ENGINE_LOG_UNWRAPPED if in_secret else None)
                continue
            text = (field_value if isinstance(field_value, str) else json.dumps(field_value)).encode(
                "utf-8", "surrogateescape")
            here = f"{where}: record {shown}, field {name!r}"
            for dump in PROPERTY_DUMP.findall(text):
                if not matcher.find(dump):
                    continue
                try:
                    strings = list(split_secret_strings(decode_log_value(base64.b64decode(dump)[8:])))
                except (ValueError, IndexError):
                    strings = [(dump.decode(), False)]
                for string, in_secret in strings:
                    for key, form in matcher.find(string.encode("utf-8", "surrogateescape")):
                        held = ENGINE_LOG_SECRET if in_secret else ENGINE_LOG_UNWRAPPED if unwrapped else None
                        yield Leak(here, fingerprint(key), form), held
            rest = PROPERTY_DUMP.sub(b"", text)
            yield from ((Leak(here, fingerprint(key), form), None) for key, form in matcher.find(rest))


# -- the child-process side: a sitecustomize that reports keys and salts back -----------------------------------

_SITECUSTOMIZE = '''\
"""Written by tests/secrets_sweep.py for one pytest session: reports the API keys an emulator issues, and the
salts of the stacks a Workspace initialises, in this child process to that session, over a Unix datagram socket
(memory only). Does nothing when the session is gone."""
import os
import sys

_ENV = %(env)r


def _send(kind, value):
    path = os.environ.get(_ENV)
    if not path:
        return
    import socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # Wait for room rather than drop: the queue holds 10 datagrams, and under load the session's reader
            # thread may not have run yet (a gone session refuses at once instead).
            sock.settimeout(10)
            sock.sendto(kind + b"\\0" + value.encode("utf-8", "surrogateescape"), path)
    except OSError:
        pass


def _patch_market(module):
    original = module.MarketBackend.store_key

    def store_key(self, api_key, *args, **kwargs):
        _send(b"key", api_key)
        return original(self, api_key, *args, **kwargs)

    module.MarketBackend.store_key = store_key


def _patch_workspace(module):
    original = module.Workspace.init_team

    def init_team(self, team, *args, **kwargs):
        try:
            return original(self, team, *args, **kwargs)
        finally:
            try:
                text = self.stack_file(team).read_text()
            except OSError:
                text = ""
            for line in text.splitlines():
                if line.startswith("encryptionsalt:"):
                    _send(b"salt", line.split(":", 1)[1].strip())

    module.Workspace.init_team = init_team


_PATCHES = {"emulator.models": _patch_market, "vastguard.workspace": _patch_workspace}


class _PatchOnImport:
    def find_spec(self, name, path=None, target=None):
        patch = _PATCHES.get(name)
        if patch is None:
            return None
        import importlib.machinery
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        exec_module = spec.loader.exec_module

        def patched(module):
            exec_module(module)
            try:
                patch(module)
            except Exception:
                pass

        spec.loader.exec_module = patched
        return spec


def _chain():
    """Run the sitecustomize this one shadows, if there is one."""
    import importlib.machinery
    import importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


if os.environ.get(_ENV):
    sys.meta_path.insert(0, _PatchOnImport())
_chain()
'''


class ChildJournal:
    """The receiving end: a datagram socket in a private temp dir, and that dir on the children's PYTHONPATH.

    A thread reads the socket as messages arrive: Linux queues at most `net.unix.max_dgram_qlen` (10 by default)
    datagrams for a reader that is not reading, and a child's non-blocking send of the eleventh is dropped. A
    child that makes a dozen keys within one test (the demo's platform stack) would otherwise escape the sweep with
    every key and salt after the tenth."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="vg-sweep-"))
        if len(str(self.directory)) > 80:  # a Unix socket's path must fit in 108 bytes
            shutil.rmtree(self.directory)
            self.directory = Path(tempfile.mkdtemp(prefix="vg-sweep-", dir="/tmp"))
        (self.directory / "sitecustomize.py").write_text(_SITECUSTOMIZE % {"env": SOCKET_ENV})
        self.path = self.directory / "journal.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self._received: collections.deque[bytes] = collections.deque()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, name="secrets-sweep-journal", daemon=True)
        self._reader.start()
        self._saved = {name: os.environ.get(name) for name in (SOCKET_ENV, "PYTHONPATH")}
        os.environ[SOCKET_ENV] = str(self.path)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.directory), self._saved["PYTHONPATH"]) if p)

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                self._received.append(self.sock.recv(65536))
            except TimeoutError:
                continue
            except OSError:
                return

    def drain(self) -> Iterator[tuple[str, str]]:
        while True:
            try:
                message = self._received.popleft()
            except IndexError:
                return
            kind, _, value = message.partition(b"\0")
            yield kind.decode(), value.decode("utf-8", "surrogateescape")

    def close(self) -> None:
        self._closing.set()
        self._reader.join(timeout=5)
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)


# -- the plugin -------------------------------------------------------------------------------------------------


@dataclass
class ScanStats:
    files: int = 0
    bytes: int = 0
    gunzipped: int = 0
    decrypted_logs: int = 0
    undecrypted_logs: list[str] = field(default_factory=list)
    too_big: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)


_ACTIVE: list[SecretsSweep] = []
"""Sweeps of the sessions running in this process, innermost last: a pytester session inside a test records
into its own sweep only, so the keys it leaks on purpose are not the outer session's."""


def record_api_key(key: str) -> None:
    """Adds a key to the running session's sweep (for keys made without an emulator account)."""
    if _ACTIVE:
        _ACTIVE[-1].record_key(key)


def record_passphrase(passphrase: str, salt_state: str) -> None:
    """Adds a stack's own passphrase and its `encryptionsalt` (secrets per team: a passphrase per team stack), so
    the sweep opens that stack's engine logs too."""
    if _ACTIVE:
        decrypter = _ACTIVE[-1].decrypter
        if passphrase not in decrypter.passphrases:
            decrypter.passphrases.append(passphrase)
        decrypter.add_salt(salt_state)


def _record_salt(state: str) -> None:
    if _ACTIVE:
        _ACTIVE[-1].decrypter.add_salt(state)


@functools.cache
def _install_hooks() -> None:
    """Wraps the choke points once per process; the wrappers report to whichever session is innermost."""
    from emulator.models import MarketBackend
    from vastguard.workspace import Workspace

    store_key = MarketBackend.store_key

    @functools.wraps(store_key)
    def recording_store_key(self: MarketBackend, api_key: str, **fields: Any) -> Any:
        record_api_key(api_key)
        return store_key(self, api_key, **fields)

    MarketBackend.store_key = recording_store_key  # type: ignore[method-assign,assignment]

    init_team = Workspace.init_team

    @functools.wraps(init_team)
    def recording_init_team(self: Workspace, team: str, **kwargs: Any) -> None:
        try:
            init_team(self, team, **kwargs)
        finally:
            with contextlib.suppress(OSError):
                for line in self.stack_file(team).read_text().splitlines():
                    if line.startswith("encryptionsalt:"):
                        _record_salt(line.split(":", 1)[1].strip())

    Workspace.init_team = recording_init_team  # type: ignore[method-assign]

    fill_unfilled = pytest.ExceptionInfo.fill_unfilled

    @functools.wraps(fill_unfilled)
    def recording_fill_unfilled(self: pytest.ExceptionInfo[BaseException],
                                exc_info: tuple[type[BaseException], BaseException, TracebackType]) -> None:
        fill_unfilled(self, exc_info)
        if _ACTIVE:
            _ACTIVE[-1].record_exception(exc_info[1])

    pytest.ExceptionInfo.fill_unfilled = recording_fill_unfilled  # type: ignore[method-assign]


def _exception_texts(exc: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        for render in (str, repr):
            with contextlib.suppress(Exception):
                yield render(link)
        yield from (str(note) for note in getattr(link, "__notes__", None) or ())
        link = link.__cause__ or link.__context__


class SecretsSweep:
    def __init__(self, config: pytest.Config) -> None:
        from engine import DEFAULT_PASSPHRASE

        self.config = config
        self.keys: dict[str, None] = {}
        self.short_keys: set[str] = set()
        self.texts: dict[tuple[str, str], str] = {}
        self.counters: dict[tuple[str, str], int] = {}
        self.current = "<session>"
        self.started = time.time()
        passphrases = [os.environ.get("PULUMI_CONFIG_PASSPHRASE") or DEFAULT_PASSPHRASE, DEFAULT_PASSPHRASE]
        self.decrypter = PlogDecrypter(passphrases)
        self.journal = ChildJournal()
        self.leaks: list[Leak] = []
        self.engine_log_holds: dict[str, list[Leak]] = {ENGINE_LOG_SECRET: [], ENGINE_LOG_UNWRAPPED: []}
        self.strict = bool(config.getoption("secrets_sweep_strict", False))
        self.stats = ScanStats()
        self.texts_scanned = 0
        self.seconds = 0.0
        self.notes: list[str] = []
        self.swept = False

    # recording

    def record_key(self, key: str) -> None:
        if len(key) < MIN_KEY_LENGTH:
            self.short_keys.add(fingerprint(key))
        else:
            self.keys.setdefault(key, None)

    def record_text(self, where: str, label: str, text: str) -> None:
        if text:
            self.texts[(where, label)] = text

    def _numbered(self, where: str, kind: str) -> str:
        self.counters[(where, kind)] = number = self.counters.get((where, kind), 0) + 1
        return f"{kind} #{number}"

    def record_exception(self, exc: BaseException) -> None:
        label = self._numbered(self.current, "exception caught by pytest.raises")
        self.record_text(self.current, label, "\n".join(_exception_texts(exc)))

    def drain(self) -> None:
        for kind, value in self.journal.drain():
            if kind == "key":
                self.record_key(value)
            elif kind == "salt":
                self.decrypter.add_salt(value)

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.current = nodeid

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.drain()
        self._record_report(report.nodeid, report.when or "", report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record_report(report.nodeid or "<collection>", "collect", report)

    def _record_report(self, nodeid: str, when: str, report: pytest.TestReport | pytest.CollectReport) -> None:
        for title, content in report.sections:
            self.record_text(nodeid, title, content)
        if report.longrepr is not None:
            self.record_text(nodeid, f"{when} report ({report.outcome})", report.longreprtext)

    def pytest_warning_recorded(self, warning_message: Any, nodeid: str) -> None:
        where = nodeid or "<session>"
        self.record_text(where, self._numbered(where, "warning"), str(warning_message.message))

    # sweeping

    def roots(self) -> list[tuple[Path, float | None]]:
        """(directory, only files changed since) to scan."""
        from engine import repo_root

        roots: list[tuple[Path, float | None]] = []
        factory = getattr(self.config, "_tmp_path_factory", None)
        basetemp = getattr(factory, "_basetemp", None)  # None: no test asked for a tmp dir
        if basetemp is not None:
            roots.append((Path(basetemp), None))
        policy = getattr(factory, "_retention_policy", "all")
        if policy != "all":
            self.notes.append(f"tmp_path_retention_policy={policy}: tmp dirs removed during the run were not swept")
        for name in (".pulumi-state", ".demo"):
            roots.append((repo_root() / name, None))
        roots.append((Path.home() / ".pulumi", self.started - 1))
        return [(root, since) for root, since in roots if root.is_dir()]

    def _allowed(self, relative: str) -> AllowedFile | None:
        return next((a for a in ALLOWED_FILES if fnmatch.fnmatch(relative, a.pattern)), None)

    def _files(self) -> Iterator[tuple[Path, str]]:
        for root, since in self.roots():
            for directory, subdirs, names in os.walk(root):
                subdirs[:] = [d for d in subdirs if not (Path(directory) / d).is_symlink()]
                if root == Path.home() / ".pulumi":
                    subdirs[:] = [d for d in subdirs if d != "plugins"]  # downloaded binaries, not ours
                for name in names:
                    path = Path(directory) / name
                    try:
                        stat = path.lstat()
                    except OSError:
                        continue
                    if not path.is_file() or path.is_symlink():
                        continue
                    if since is not None and stat.st_mtime < since:
                        continue
                    if stat.st_size > MAX_FILE_BYTES:
                        self.stats.too_big.append(str(path))
                        continue
                    yield path, path.relative_to(root).as_posix()

    def sweep(self) -> None:
        started = time.monotonic()
        self.drain()
        matcher = KeyMatcher(self.keys)
        plogs: list[tuple[Path, bytes]] = []

        def check(where: str, data: bytes) -> None:
            for key, form in matcher.find(data):
                self.leaks.append(Leak(where, fingerprint(key), form))

        for path, relative in self._files():
            try:
                data = path.read_bytes()
            except OSError:
                self.stats.unreadable.append(str(path))
                continue
            self.stats.files += 1
            self.stats.bytes += len(data)
            if b"v1:" in data:
                for state in SALT_STATE.findall(data):
                    self.decrypter.add_salt(state.decode())
            if self._allowed(relative) is not None:
                self.stats.allowed.append(str(path))
                continue
            check(str(path), data)
            if data.startswith(PLOG_MAGIC):
                plogs.append((path, data))
            elif data.startswith(GZIP_MAGIC):
                with contextlib.suppress(OSError, EOFError, zlib.error):
                    check(f"{path} (gunzipped)", gzip.decompress(data))
                    self.stats.gunzipped += 1
        for path, data in plogs:
            try:
                plain = self.decrypter.decrypt(data)
            except (ImportError, ValueError, struct.error, binascii.Error, OSError, EOFError, zlib.error) as exc:
                self.stats.undecrypted_logs.append(f"{path} ({type(exc).__name__})")
                continue
            if plain is None:
                self.stats.undecrypted_logs.append(f"{path} (no known salt)")
                continue
            self.stats.decrypted_logs += 1
            for leak, held in engine_log_findings(f"{path} (decrypted engine log)", plain, matcher):
                (self.leaks if held is None else self.engine_log_holds[held]).append(leak)
        for (where, label), text in self.texts.items():
            self.texts_scanned += 1
            for key, form in matcher.find(text.encode("utf-8", "surrogateescape")):
                self.leaks.append(Leak(f"{where} [{label}]", fingerprint(key), form))
        if self.config.getoption("capture", "fd") == "no":
            self.notes.append("capture disabled (-s): printed output went to the terminal unswept")
        self.seconds = time.monotonic() - started
        self.swept = True

    @pytest.hookimpl(tryfirst=True)  # before tmpdir's own sessionfinish, which may delete basetemp
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.sweep()
        if self.strict:
            for holds in self.engine_log_holds.values():
                self.leaks.extend(holds)
                holds.clear()
        if self.leaks and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.swept:
            return
        tr = terminalreporter
        s = self.stats
        scope = (f"{len(self.keys)} API keys swept over {s.files} files ({s.bytes / 1e6:.1f} MB; "
                 f"{s.decrypted_logs} engine logs decrypted, {s.gunzipped} gunzipped) and {self.texts_scanned} "
                 f"captured texts/reports/exception messages in {self.seconds:.1f} s")
        tr.section("secrets sweep", sep="-", bold=True)
        if self.leaks:
            keys = {leak.key_fingerprint for leak in self.leaks}
            tr.write_line(f"secrets sweep FAILED: {len(self.leaks)} leak(s) of {len(keys)} API key(s); {scope}",
                          red=True, bold=True)
            for leak, times in Counter(self.leaks).items():
                again = f" ({times} times)" if times > 1 else ""
                tr.write_line(f"  key {leak.key_fingerprint} ({leak.form}) in {leak.where}{again}", red=True)
        else:
            tr.write_line(f"secrets sweep passed: no key found; {scope}", green=True)
        details = [
            (f"{len(self.short_keys)} short fixed test keys (< {MIN_KEY_LENGTH} chars) not swept", len(self.short_keys),
             []),
            (f"{len(s.allowed)} allow-listed files skipped", len(s.allowed), s.allowed),
            (f"{len(s.undecrypted_logs)} encrypted engine logs could not be decrypted, not swept",
             len(s.undecrypted_logs), s.undecrypted_logs),
            (f"{len(s.too_big)} files over {MAX_FILE_BYTES // 2**20} MB not swept", len(s.too_big), s.too_big),
            (f"{len(s.unreadable)} unreadable files", len(s.unreadable), s.unreadable),
        ]
        for why, holds in self.engine_log_holds.items():
            if holds:
                logs = {leak.where.partition(" (decrypted engine log)")[0] for leak in holds}
                keys = {leak.key_fingerprint for leak in holds}
                tr.write_line(f"  note: {len(holds)} occurrence(s) of {len(keys)} key(s) in {len(logs)} encrypted "
                              f"engine log(s), {why}; allowed: encrypted with the stack's passphrase key like its "
                              "secret config (--secrets-sweep-strict fails on them)", yellow=True)
        for line, count, paths in details:
            if count:
                tr.write_line(f"  note: {line}" + (": " + ", ".join(paths[:5]) if paths else "")
                              + (" ..." if len(paths) > 5 else ""))
        for note in self.notes:
            tr.write_line(f"  note: {note}")

    def close(self) -> None:
        self.journal.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("vastguard secrets sweep").addoption(
        "--secrets-sweep-strict", action="store_true", default=False,
        help="also fail on keys held inside Pulumi's encrypted engine logs (see tests/secrets_sweep.py)")


def pytest_configure(config: pytest.Config) -> None:
    _install_hooks()
    sweep = SecretsSweep(config)
    config.pluginmanager.register(sweep, PLUGIN_NAME)
    _ACTIVE.append(sweep)


def pytest_unconfigure(config: pytest.Config) -> None:
    sweep = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(sweep, SecretsSweep):
        if sweep in _ACTIVE:
            _ACTIVE.remove(sweep)
        sweep.close()


__all__ = ["ALLOWED_FILES", "ENGINE_LOG_SECRET", "ENGINE_LOG_UNWRAPPED", "MIN_KEY_LENGTH", "AllowedFile", "KeyMatcher",
           "Leak", "PlogDecrypter", "SecretsSweep", "engine_log_findings", "fingerprint", "key_forms",
           "record_api_key"]

