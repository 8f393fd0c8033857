"""Reading history: DIY layouts on disk, compression, broken files, and S3 through a real HTTP server."""

from __future__ import annotations

import gzip
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from reports.fold import fold_stack
from reports.pulumi_state import StateFormatError
from reports.s3 import Credentials, S3Bucket, S3Error, S3Location, sign
from reports.sources import SourceError, StackRef, ensure_stacks, open_source
from reports.synthetic import Rented, StackWriter
from tests.reports.conftest import utc

ACCESS, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def small_backend(root: Path, *, compress: bool = False) -> StackWriter:
    w = StackWriter(root, "ml-research", "ml-research", compress=compress)
    w.rent(Rented("a", 1, "RTX 4090", 0.4))
    w.record(start=utc(2026, 11, 1))
    w.set_state("a", "stopped")
    w.record(start=utc(2026, 11, 2))
    w.remove("a")
    w.record(start=utc(2026, 11, 3), kind="destroy")
    return w


def test_local_backend_lists_stacks_and_reads_entries_in_order(tmp_path: Path) -> None:
    small_backend(tmp_path)
    StackWriter(tmp_path, "data-science", "data-science").record(start=utc(2026, 11, 5))
    source = open_source(f"file://{tmp_path}")
    assert source.stacks() == [StackRef("vastguard", "data-science"), StackRef("vastguard", "ml-research")]
    entries = list(source.entries(StackRef("vastguard", "ml-research")))
    assert [e.sequence for e in entries] == [1, 2, 3]
    assert [e.record.kind for e in entries] == ["update", "update", "destroy"]


def test_gzip_files_and_attrs_sidecars(tmp_path: Path) -> None:
    small_backend(tmp_path, compress=True)
    history = tmp_path / ".pulumi/history/vastguard/ml-research"
    (history / "x.attrs").write_text("{}")
    entries = list(open_source(f"file://{tmp_path}").entries(StackRef("vastguard", "ml-research")))
    assert len(entries) == 3 and entries[0].snapshot is not None and len(entries[0].snapshot.instances) == 1


def test_compression_is_detected_by_content_not_name(tmp_path: Path) -> None:
    small_backend(tmp_path)
    first = sorted((tmp_path / ".pulumi/history/vastguard/ml-research").glob("*.checkpoint.json"))[0]
    first.write_bytes(gzip.compress(first.read_bytes()))
    entries = list(open_source(f"file://{tmp_path}").entries(StackRef("vastguard", "ml-research")))
    assert entries[0].snapshot is not None and entries[0].snapshot.instances[0].outputs.instance_id == 1


def test_legacy_layout_without_projects(tmp_path: Path) -> None:
    small_backend(tmp_path)
    pulumi = tmp_path / ".pulumi"
    (pulumi / "meta.yaml").unlink()
    shutil.move(pulumi / "history/vastguard/ml-research", pulumi / "history/ml-research")
    shutil.move(pulumi / "stacks/vastguard/ml-research.json", pulumi / "stacks/ml-research.json")
    source = open_source(f"file://{tmp_path}")
    assert source.stacks() == [StackRef("", "ml-research")]
    assert len(list(source.entries(StackRef("", "ml-research")))) == 3


def test_a_missing_checkpoint_is_an_event_without_changes(tmp_path: Path) -> None:
    small_backend(tmp_path)
    second = sorted((tmp_path / ".pulumi/history/vastguard/ml-research").glob("*.checkpoint.json"))[1]
    second.unlink()
    ref = StackRef("vastguard", "ml-research")
    result = fold_stack("vastguard", "ml-research", open_source(f"file://{tmp_path}").entries(ref))
    assert [e.checkpoint_missing for e in result.events] == [False, True, False]


def test_broken_and_zstd_files_name_themselves(tmp_path: Path) -> None:
    small_backend(tmp_path)
    files = sorted((tmp_path / ".pulumi/history/vastguard/ml-research").glob("*.history.json"))
    files[0].write_text("{not json")
    ref = StackRef("vastguard", "ml-research")
    with pytest.raises(StateFormatError, match=files[0].name):
        list(open_source(f"file://{tmp_path}").entries(ref))
    files[0].write_bytes(b"\x28\xb5\x2f\xfd rest")
    with pytest.raises(StateFormatError, match="zstd"):
        list(open_source(f"file://{tmp_path}").entries(ref))


def test_unknown_locations_and_filters_fail_with_advice(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no Pulumi state"):
        open_source(f"file://{tmp_path}")
    with pytest.raises(SourceError, match="gs://"):
        open_source("gs://bucket")
    small_backend(tmp_path)
    source = open_source(f"file://{tmp_path}")
    with pytest.raises(SourceError, match="vastguard/ml-research"):
        ensure_stacks(source, stacks=["nope"])
    assert ensure_stacks(source, stacks=["ml-research"]) == [StackRef("vastguard", "ml-research")]


# --- S3 -----------------------------------------------------------------------------------------------------


def test_sigv4_reproduces_the_s3_documentation_example() -> None:
    """AWS S3 docs, "Example: GET Object" (header-based auth, hash of the empty payload)."""
    headers = sign(method="GET", url="https://examplebucket.s3.amazonaws.com/test.txt",
                   headers={"Range": "bytes=0-9",
                            "x-amz-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
                   credentials=Credentials(ACCESS, SECRET), region="us-east-1",
                   when=datetime(2013, 5, 24, tzinfo=UTC))
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_sigv4_reproduces_the_test_suite_query_order_case() -> None:
    """AWS SigV4 test suite, get-vanilla-query-order-key-case: query parameters sorted by key."""
    headers = sign(method="GET", url="https://example.amazonaws.com/?Param2=value2&Param1=value1", headers={},
                   credentials=Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                   region="us-east-1", service="service", when=datetime(2015, 8, 30, 12, 36, tzinfo=UTC))
    assert headers["Authorization"].endswith(
        "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")


def test_s3_location_follows_pulumi_url_parameters() -> None:
    loc = S3Location.parse("s3://state/teams/prod?endpoint=minio:9000&disableSSL=true&s3ForcePathStyle=true"
                           "&region=eu-west-1", environ={})
    assert (loc.bucket, loc.prefix, loc.region, loc.endpoint, loc.path_style) == (
        "state", "teams/prod", "eu-west-1", "http://minio:9000", True)
    assert loc.object_url(".pulumi/meta.yaml") == "http://minio:9000/state/.pulumi/meta.yaml"
    aws = S3Location.parse("s3://state", environ={"AWS_REGION": "us-west-2"})
    assert aws.object_url("a b") == "https://state.s3.us-west-2.amazonaws.com/a%20b"


class FakeS3(BaseHTTPRequestHandler):
    """Path-style ListObjectsV2 (3 keys a page) and GetObject over a dict, verifying every signature."""

    objects: dict[str, bytes] = {}
    requests: list[str] = []

    def log_message(self, *_args: object) -> None:
        pass

    def _authorized(self) -> bool:
        amz_date = self.headers["X-Amz-Date"]
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expected = sign(method="GET", url=f"http://{self.headers['Host']}{self.path}",
                        headers={"x-amz-content-sha256": self.headers["x-amz-content-sha256"]},
                        credentials=Credentials(ACCESS, SECRET), region="us-east-1", when=when)
        return self.headers["Authorization"] == expected["Authorization"]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if not self._authorized():
            self._send(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
            return
        parts = urllib.parse.urlsplit(self.path)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        query = dict(urllib.parse.parse_qsl(parts.query))
        if bucket != "state":
            self._send(404, b"<Error><Code>NoSuchBucket</Code></Error>")
        elif query.get("list-type") == "2":
            keys = sorted(k for k in self.objects if k.startswith(query.get("prefix", "")))
            start = int(query.get("continuation-token", "0"))
            page = keys[start:start + 3]
            more = start + 3 < len(keys)
            body = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
                    'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>state</Name>'
                    + "".join(f"<Contents><Key>{escape(k)}</Key></Contents>" for k in page)
                    + f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>"
                    + (f"<NextContinuationToken>{start + 3}</NextContinuationToken>" if more else "")
                    + "</ListBucketResult>")
            self._send(200, body.encode())
        elif urllib.parse.unquote(key) in self.objects:
            self._send(200, self.objects[urllib.parse.unquote(key)])
        else:
            self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def s3_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_history_reads_from_an_s3_bucket_like_from_disk(tmp_path: Path, s3_server: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    small_backend(tmp_path, compress=True)
    StackWriter(tmp_path, "data-science", "data-science").record(start=utc(2026, 11, 5))
    FakeS3.objects = {f"teams/{p.relative_to(tmp_path).as_posix()}": p.read_bytes()
                      for p in tmp_path.rglob("*") if p.is_file()}
    FakeS3.requests = []
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    url = f"s3://state/teams?endpoint={s3_server}&disableSSL=true&s3ForcePathStyle=true&region=us-east-1"
    source = open_source(url)
    local = open_source(f"file://{tmp_path}")
    assert source.stacks() == local.stacks()
    ref = StackRef("vastguard", "ml-research")
    remote_events = fold_stack(ref.project, ref.stack, source.entries(ref)).events
    local_events = fold_stack(ref.project, ref.stack, local.entries(ref)).events
    assert remote_events == local_events
    assert any("continuation-token" in r for r in FakeS3.requests)  # the listing really paged


def test_s3_errors_carry_the_code_but_never_the_secret(s3_server: str) -> None:
    loc = S3Location.parse(f"s3://state?endpoint={s3_server}&disableSSL=true&s3ForcePathStyle=true", environ={})
    bucket = S3Bucket(loc, Credentials(ACCESS, "not-the-secret-at-all"))
    with pytest.raises(S3Error) as err:
        bucket.read(".pulumi/meta.yaml")
    assert err.value.status == 403 and err.value.code == "SignatureDoesNotMatch"
    assert "not-the-secret" not in str(err.value) and "not-the-secret" not in repr(bucket.credentials)


def test_s3_without_credentials_says_which_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(SourceError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        open_source("s3://state/prefix")


def test_unchanged_resources_are_parsed_once_and_changes_are_not_missed(tmp_path: Path) -> None:
    w = StackWriter(tmp_path, "s", "t")
    w.rent(Rented("a", 1, "RTX 4090", 0.4))
    w.rent(Rented("b", 2, "RTX 4090", 0.4))
    w.record(start=utc(2026, 11, 1))
    w.set_state("b", "stopped")
    w.record(start=utc(2026, 11, 2))
    first, second = (e.snapshot for e in open_source(f"file://{tmp_path}").entries(StackRef("vastguard", "s")))
    assert first is not None and second is not None
    assert second.instances[0] is first.instances[0]  # `a` untouched: the same parsed object
    assert second.instances[1] is not first.instances[1]
    assert second.instances[1].outputs.state == "stopped"
