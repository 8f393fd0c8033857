"""The secrets sweep (tests/secrets_sweep.py) can fail: inner pytest sessions that leak a recorded key into a
file, into captured output, into an exception or skip reason, through a child process and inside an encrypted
Pulumi log each fail and name where; a clean one passes. The inner sessions run in this process (pytester),
and their keys are theirs alone: this session's own sweep passing proves that too."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from emulator import EmulatorServer
from emulator.testing import make_account
from engine import DEFAULT_PASSPHRASE, ensure, repo_root
from tests.secrets_sweep import (
    ENGINE_LOG_SECRET,
    KeyMatcher,
    PlogDecrypter,
    engine_log_findings,
    fingerprint,
    key_forms,
)
from vastguard.workspace import Workspace

pytest_plugins = ["pytester"]

ROOT = repo_root()


def inner_session(pytester: pytest.Pytester, test_source: str) -> pytest.RunResult:
    pytester.makeconftest('pytest_plugins = ["tests.secrets_sweep"]\n')
    pytester.makepyfile(test_inner=test_source)
    return pytester.runpytest("-p", "no:cacheprovider")


def team_key(team: str = "ml-research") -> str:
    return f"{team}-{secrets.token_hex(16)}"


def assert_never_shown(result: pytest.RunResult, *keys: str) -> None:
    shown = result.stdout.str() + result.stderr.str()
    for key in keys:
        assert key not in shown


ACCOUNTS = """
import pytest
from emulator import EmulatorServer
from emulator.testing import make_account

KEYS = {keys!r}


@pytest.fixture(autouse=True, scope="session")
def accounts():
    with EmulatorServer(port=0, seed=1, provision_delay=0, rate_limits=False) as srv:
        for key in KEYS:
            make_account(srv, api_key=key)
        yield srv
"""


def test_a_key_written_to_files_fails_the_session_and_names_each_file(pytester: pytest.Pytester) -> None:
    key, odd_key = team_key(), "data-science+" + secrets.token_urlsafe(12) + "/=="
    result = inner_session(pytester, ACCOUNTS.format(keys=[key, odd_key]) + """
import base64, json
from urllib.parse import quote

def test_writes_keys(tmp_path):
    (tmp_path / "state" / ".pulumi").mkdir(parents=True)
    (tmp_path / "state" / ".pulumi" / "leaky.json").write_text(json.dumps({"vastai:apiKey": KEYS[0]}))
    (tmp_path / "auth.txt").write_bytes(b"Authorization: Basic " + base64.b64encode(b"team:" + KEYS[0].encode()))
    (tmp_path / "request.log").write_text("GET /api/v0/instances/?api_key=" + quote(KEYS[1], safe=""))
    (tmp_path / "harmless.txt").write_text("a key's fingerprint is not the key")
""")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1)  # the test itself passed: the sweep failed the session
    result.stdout.fnmatch_lines(["*secrets sweep FAILED: 3 leak(s) of 2 API key(s)*"])
    for line in (f"  key {fingerprint(key)} (raw) in */test_writes_keys0/state/.pulumi/leaky.json",
                 f"  key {fingerprint(key)} (base64) in */test_writes_keys0/auth.txt",
                 f"  key {fingerprint(odd_key)} (url-encoded) in */test_writes_keys0/request.log"):
        result.stdout.fnmatch_lines([line])  # one at a time: files are listed in directory order
    assert "harmless.txt" not in result.stdout.str()
    assert_never_shown(result, key, odd_key)


def test_a_key_in_output_logs_exceptions_or_reports_fails_the_session_naming_the_test(
        pytester: pytest.Pytester) -> None:
    key = team_key()
    result = inner_session(pytester, ACCOUNTS.format(keys=[key]) + """
import logging

def test_prints():
    print("renting with", KEYS[0])

def test_logs():
    logging.getLogger("vastguard").warning("key=%s", KEYS[0])

def test_raises():
    with pytest.raises(RuntimeError):
        raise RuntimeError("quota exceeded") from ValueError("for " + KEYS[0])

# Not a skipped test of the suite: this file is generated for the inner pytester session, whose skip
# reason must carry the key so the outer test can prove the sweep reads skip reports too.
def test_skips():
    pytest.skip("no credit on " + KEYS[0])

def test_clean():
    print("nothing to see")
""")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=4, skipped=1)
    fp = fingerprint(key)
    result.stdout.fnmatch_lines([
        "*secrets sweep FAILED: 4 leak(s) of 1 API key(s)*",
        f"  key {fp} (raw) in test_inner.py::test_prints [[]Captured stdout call[]]",
        f"  key {fp} (raw) in test_inner.py::test_logs [[]Captured log call[]]",
        f"  key {fp} (raw) in test_inner.py::test_raises [[]exception caught by pytest.raises #1[]]",
        f"  key {fp} (raw) in test_inner.py::test_skips [[]call report (skipped)[]]",
    ], consecutive=False)
    assert "test_clean" not in result.stdout.str()
    assert_never_shown(result, key)


def test_a_key_the_emulator_mints_through_the_api_is_swept_too(pytester: pytest.Pytester) -> None:
    # `POST /api/v0/auth/apikeys/` makes the key in the emulator; the test only ever sees the response.
    result = inner_session(pytester, """
import json
from emulator import EmulatorServer
from emulator.testing import http, make_account

def test_minted(tmp_path):
    with EmulatorServer(port=0, seed=1, provision_delay=0) as srv:
        owner = make_account(srv)
        made = http(srv.url, "POST", "/api/v0/auth/apikeys/", key=owner.api_key,
                    body={"name": "ci", "permissions": {"api": {"misc": {}}}}).json()
    (tmp_path / "minted.txt").write_text(made["key"])
""")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*secrets sweep FAILED: 1 leak(s) of 1 API key(s); 2 API keys swept*",
        "  key sha256:* (raw) in */test_minted0/minted.txt",
    ])


def test_a_key_issued_in_a_child_process_is_swept_too(pytester: pytest.Pytester) -> None:
    # `vastguard demo` and `python -m emulator` create accounts in a process of their own.
    result = inner_session(pytester, f"""
import subprocess, sys

CHILD = '''
import sys
from emulator import EmulatorServer
from emulator.testing import make_account
with EmulatorServer(port=0, seed=1, provision_delay=0, rate_limits=False) as srv:
    account = make_account(srv)
open(sys.argv[1], "w").write(account.api_key)
'''

def test_child(tmp_path):
    subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "child-leak.txt")], cwd={str(ROOT)!r},
                   check=True, timeout=60)
""")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*secrets sweep FAILED: 1 leak(s) of 1 API key(s); 1 API keys swept*",
        "  key sha256:* (raw) in */test_child0/child-leak.txt",
    ])


def passphrase_value(key: bytes, plaintext: bytes) -> bytes:
    """Pulumi's passphrase crypter, written from its source (sdk/go/common/resource/config/crypt.go)."""
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, None)
    return b"v1:" + base64.b64encode(nonce) + b":" + base64.b64encode(ciphertext)


def plog(passphrase: str, plaintext: bytes) -> tuple[str, bytes]:
    """A stack's `encryptionsalt` and a PLOG log of `plaintext` (pkg/engine/encryptedlog/format.go), two chunks."""
    salt = os.urandom(8)
    stack_key = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, 1_000_000, 32)
    salt_state = "v1:" + base64.b64encode(salt).decode() + ":" + passphrase_value(stack_key, b"pulumi").decode()
    session_key = os.urandom(32)
    box = passphrase_value(stack_key, session_key)
    out = b"PLOG\x01" + len(box).to_bytes(2, "big") + box
    half = len(plaintext) // 2
    for counter, part in enumerate((plaintext[:half], plaintext[half:]), start=1):
        nonce = bytes(4) + counter.to_bytes(8, "big")
        payload = nonce + AESGCM(session_key).encrypt(nonce, gzip.compress(part), None)
        out += len(payload).to_bytes(4, "big") + payload
    return salt_state, out


def _varint(n: int) -> bytes:
    out = b""
    while n > 0x7F:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2]) + _varint(len(payload)) + payload


def property_dump(value: str | dict[str, str]) -> str:
    """The engine's log form of a property: base64 of "pulumiPv" + a protobuf google.protobuf.Value
    (sdk/go/common/util/logging/log_value.go), for a string or an object of strings."""
    if isinstance(value, str):
        encoded = _field(3, value.encode())
    else:
        entries = b"".join(_field(1, _field(1, k.encode()) + _field(2, _field(3, v.encode())))
                           for k, v in value.items())
        encoded = _field(5, entries)
    return base64.b64encode(b"pulumiPv" + encoded).decode()


def test_a_key_inside_an_encrypted_engine_log_is_found_unless_pulumi_holds_it_as_a_secret(
        pytester: pytest.Pytester) -> None:
    key = team_key("data-science")
    sig, secret = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
    marshaling = "Marshaling property for RPC[%s]: %s=%v"
    unmarshaling = "Unmarshaling property for RPC[%s]: %s=%v"
    records = [
        {"msg": "provider config", "apiKey": key},  # a leak: the key in a plain field
        {"msg": marshaling, "pulumi.log.arg0": "Configure", "pulumi.log.arg1": "vastai:apiKey",
         "pulumi.log.arg2": property_dump({sig: secret, "value": key})},  # held: inside its secret envelope
        {"msg": marshaling, "pulumi.log.arg0": "Configure", "pulumi.log.arg1": sig,
         "pulumi.log.arg2": property_dump(secret)},
        {"msg": marshaling, "pulumi.log.arg0": "Configure", "pulumi.log.arg1": "value",
         "pulumi.log.arg2": property_dump(key)},  # held: the engine's record of that secret's inner value
        {"msg": marshaling, "pulumi.log.arg0": "Create", "pulumi.log.arg1": "value",
         "pulumi.log.arg2": property_dump(key)},  # a leak: bare, and no secret signature before it
        {"msg": unmarshaling, "pulumi.log.arg0": "Create.outputs", "pulumi.log.arg1": sig,
         "pulumi.log.arg2": {"V": secret}},
        {"msg": unmarshaling, "pulumi.log.arg0": "Create.outputs", "pulumi.log.arg1": "value",
         "pulumi.log.arg2": {"V": key}},  # held: the inner value of the secret a provider returned...
        {"msg": unmarshaling, "pulumi.log.arg0": "Create.outputs", "pulumi.log.arg1": "key",
         "pulumi.log.arg2": {"V": {"Element": {"V": key}}}},  # ...and the secret itself
        {"msg": unmarshaling, "pulumi.log.arg0": "Create.outputs", "pulumi.log.arg1": "key",
         "pulumi.log.arg2": {"V": key}},  # a leak: a provider returned it as a plain output
    ]
    salt_state, log = plog(DEFAULT_PASSPHRASE, b"".join(json.dumps(r).encode() + b"\n" for r in records))
    assert key.encode() not in log
    result = inner_session(pytester, ACCOUNTS.format(keys=[key]) + f"""
import base64

def test_engine_log(tmp_path):
    (tmp_path / "ws" / "stacks").mkdir(parents=True)
    (tmp_path / "ws" / "stacks" / "Pulumi.data-science.yaml").write_text("encryptionsalt: {salt_state}\\n")
    (tmp_path / "home" / "logs").mkdir(parents=True)
    (tmp_path / "home" / "logs" / "organization+vastguard+data-science-20261123T120000.log").write_bytes(
        base64.b64decode({base64.b64encode(log)!r}))
""")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    fp = fingerprint(key)
    result.stdout.fnmatch_lines([
        "*secrets sweep FAILED: 3 leak(s) of 1 API key(s)*1 engine logs decrypted*",
        f"  key {fp} (raw) in */organization+vastguard+data-science-*.log (decrypted engine log): "
        "record 'provider config', field 'apiKey'",
        f"  key {fp} (raw) in */organization+vastguard+data-science-*.log (decrypted engine log): "
        f"record {marshaling.replace('[', '[[]')!r}, field 'pulumi.log.arg2'",  # '[' opens a class in fnmatch
        f"  key {fp} (raw) in */organization+vastguard+data-science-*.log (decrypted engine log): "
        f"record {unmarshaling.replace('[', '[[]')!r}, field 'pulumi.log.arg2'",
        "  note: 1 occurrence(s) of 1 key(s) in 1 encrypted engine log(s), inside a secret*",
        "  note: 3 occurrence(s) of 1 key(s) in 1 encrypted engine log(s), bare, in the engine's debug record*",
    ])
    assert_never_shown(result, key)


def test_a_clean_session_passes_and_says_what_it_swept(pytester: pytest.Pytester) -> None:
    key = team_key()
    result = inner_session(pytester, ACCOUNTS.format(keys=[key]) + """
import hashlib, json

def test_uses_the_key_properly(tmp_path, accounts):
    (tmp_path / "account.json").write_text(json.dumps({"sha256": hashlib.sha256(KEYS[0].encode()).hexdigest()}))
    print("account ready")
    with pytest.raises(PermissionError, match="denied"):
        raise PermissionError("denied: invalid user key")
""")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*secrets sweep passed: no key found; 1 API keys swept over * files *"
                                 "captured texts/reports/exception messages in *"])


def test_key_forms_find_a_key_inside_longer_encoded_blobs() -> None:
    key = "emu-" + secrets.token_hex(16)
    other = team_key()
    matcher = KeyMatcher([key, other])
    for prefix_length in range(6):
        for suffix_length in range(4):
            blob = b"p" * prefix_length + key.encode() + b"s" * suffix_length
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                assert matcher.find(b"x" + encode(blob) + b"y") == [(key, "base64")], (prefix_length, suffix_length)
    assert matcher.find(f'"{other}"'.encode()) == [(other, "raw")]
    assert matcher.find(key[:-1].encode() + b"!") == []
    assert {"raw", "url-encoded", "json-escaped", "base64"} == set(key_forms('k"ey/+' + "x" * 20).values())


@pytest.mark.engine
def test_real_engine_logs_decrypt_and_hold_the_key_only_where_pulumi_puts_secrets(tmp_path: Path) -> None:
    # Pulumi's log format is internal to the engine: proven on the pinned engine's own logs of a preview, not
    # only on the format as written down above.
    key = team_key()
    with EmulatorServer(port=0, seed=7, provision_delay=0) as emulator:
        make_account(emulator, api_key=key, balance=1000, username="ml-research")
        ws = Workspace.create(ensure(log=lambda _line: None), tmp_path / "ws", state_dir=tmp_path / "state",
                              extra_env={"PULUMI_HOME": str(tmp_path / "home")})
        ws.init_team("ml-research", api_key=key, vast_url=emulator.url)
        ws.set_fleet("ml-research", {"notebook": {"gpu": "RTX_3090", "count": 1, "image": "jupyter/base-notebook",
                                                  "disk_gb": 16, "max_dph": 0.5}})
        preview = ws.preview("ml-research", policy=False)
        assert preview.returncode == 0, preview.stderr[-3000:]
    salt = re.search(r"^encryptionsalt: (\S+)$", ws.stack_file("ml-research").read_text(), re.MULTILINE)
    assert salt is not None
    decrypter = PlogDecrypter([DEFAULT_PASSPHRASE])
    decrypter.add_salt(salt.group(1))
    encrypted = [p for p in (tmp_path / "home" / "logs").iterdir() if p.read_bytes().startswith(b"PLOG")]
    assert encrypted, "the engine wrote no encrypted log"
    matcher = KeyMatcher([key])
    findings = []
    for path in encrypted:
        plain = decrypter.decrypt(path.read_bytes())
        assert plain is not None and b'"msg":' in plain, path.name
        findings += list(engine_log_findings(path.name, plain, matcher))
    assert [leak for leak, held in findings if held is None] == []
    # The engine dumps the stack's config as properties, the key inside its secret envelope: the decoder sees it.
    assert any(held == ENGINE_LOG_SECRET for _, held in findings), findings


def test_every_key_a_child_issues_is_swept_even_a_dozen_at_once(pytester: pytest.Pytester) -> None:
    # Linux queues 10 datagrams for a socket nobody reads (net.unix.max_dgram_qlen): the demo's platform stack
    # makes more keys than that within one test, and the sweep must hear every one, the last one too.
    result = inner_session(pytester, f"""
import subprocess, sys

CHILD = '''
import sys
from emulator import EmulatorServer
from emulator.testing import make_account
with EmulatorServer(port=0, seed=1, provision_delay=0, rate_limits=False) as srv:
    accounts = [make_account(srv) for _ in range(15)]
open(sys.argv[1], "w").write(accounts[-1].api_key)
'''

def test_child(tmp_path):
    subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "child-leak.txt")], cwd={str(ROOT)!r},
                   check=True, timeout=60)
""")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*secrets sweep FAILED: 1 leak(s) of 1 API key(s); 15 API keys swept*",
        "  key sha256:* (raw) in */test_child0/child-leak.txt",
    ])
