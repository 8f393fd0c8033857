"""The reports read DIY history from cloud buckets through the maintained SDKs, against local servers installed
from the registries: S3 on moto's server (with request signatures enforced, so wrong credentials fail) with
credentials from a profile file (no key variables set) and from the environment; Azure Blob on Azurite (from
npm, installed by engine.tools.ensure_azurite) with a shared key, a connection string and a SAS token.

The history is what Pulumi writes (a synthetic month in the DIY layout), uploaded as-is; the reports must
fold the same events from the bucket as from a local directory.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import moto.settings
import pytest
from moto.server import ThreadedMotoServer

from engine.tools import ensure_azurite
from reports.cli import main
from reports.fold import fold_stack
from reports.s3 import S3Bucket, S3Location
from reports.sources import SourceError, open_source
from tests.reports.scenarios import NOW, november

BUCKET = "vastguard-state"
REGION = "us-east-1"
# Azurite's documented development account (public, the same in every Azurite): not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
           "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("november-cloud")
    november(root)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.name.endswith(".attrs")}


def _events(url: str) -> list[object]:
    source = open_source(url)
    return [e for ref in source.stacks() for e in fold_stack(ref.project, ref.stack, source.entries(ref)).events]


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    # Never the developer's own ~/.aws: an empty config and credentials file unless a test writes one.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role probe of 169.254.169.254
    return monkeypatch


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str = ""

    def url(self, prefix: str = "teams") -> str:
        return f"s3://{BUCKET}/{prefix}?endpoint={self.endpoint}&s3ForcePathStyle=true&region={REGION}"


@pytest.fixture
def s3(history: Path) -> Iterator[S3Server]:
    """moto's S3 holding the history under `teams/`, and an IAM user allowed to read it; from the first request
    after setup on, moto checks every signature against its IAM users, as AWS does."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = moto.settings.INITIAL_NO_AUTH_ACTION_COUNT
    try:
        # moto's backends are process-wide: start from an empty account whatever an earlier server left.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"),  # noqa: S310
                               timeout=10).close()
        setup = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "setup",
                 "aws_secret_access_key": "setup"}
        s3_client = boto3.client("s3", **setup)
        s3_client.create_bucket(Bucket=BUCKET)
        for key, body in _files(history).items():
            s3_client.put_object(Bucket=BUCKET, Key=f"teams/{key}", Body=body)
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="reports")
        iam.put_user_policy(UserName="reports", PolicyName="read-state", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"}]}))
        key = iam.create_access_key(UserName="reports")["AccessKey"]
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = saved
        server.stop()


def test_s3_with_credentials_from_a_profile_file_and_no_key_variables(
        s3: S3Server, history: Path, no_aws_env: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(f"[state-reader]\naws_access_key_id = {s3.access_key}\n"
                           f"aws_secret_access_key = {s3.secret_key}\n")
    no_aws_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    no_aws_env.setenv("AWS_PROFILE", "state-reader")
    assert _events(s3.url()) == _events(f"file://{history}")

    # The same through the command a CI job runs, with the profile named in the URL instead.
    no_aws_env.delenv("AWS_PROFILE")
    code = main(["spend", "--backend", s3.url() + "&profile=state-reader", "--month", "2026-11", "--by", "month",
                 "--now", NOW.isoformat(), "--no-progress", "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert {t["team"] for t in json.loads(out)["teams"]} == {"data-science", "ml-engineering", "ml-research"}


def test_s3_with_credentials_from_the_environment(s3: S3Server, history: Path,
                                                   no_aws_env: pytest.MonkeyPatch) -> None:
    no_aws_env.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    no_aws_env.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    bucket = S3Bucket(S3Location.parse(s3.url()))
    bucket.page_size = 5  # the listing must page (continuation tokens), as it will on a long history
    assert len(bucket.list(".pulumi/history/")) > 5
    assert _events(s3.url()) == _events(f"file://{history}")


def test_s3_with_wrong_or_missing_credentials_says_what_to_fix(s3: S3Server, no_aws_env: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    no_aws_env.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    no_aws_env.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all")
    code = main(["audit", "--backend", s3.url(), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "SignatureDoesNotMatch" in err and "does not match" in err
    assert "not-the-secret" not in err and "Traceback" not in err
    no_aws_env.delenv("AWS_ACCESS_KEY_ID")
    no_aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SourceError, match=r"no AWS credentials.*AWS_PROFILE"):
        open_source(s3.url()).stacks()
    with pytest.raises(SourceError, match="profile 'nobody'"):
        open_source(s3.url() + "&profile=nobody")


def test_s3_location_follows_pulumi_url_parameters() -> None:
    loc = S3Location.parse("s3://state/teams/prod?endpoint=minio:9000&disableSSL=true&s3ForcePathStyle=true"
                           "&region=eu-west-1&profile=ci", environ={})
    assert (loc.bucket, loc.prefix, loc.region, loc.endpoint, loc.path_style, loc.profile) == (
        "state", "teams/prod", "eu-west-1", "http://minio:9000", True, "ci")
    aws = S3Location.parse("s3://state", environ={"AWS_REGION": "us-west-2"})
    assert (aws.endpoint, aws.region, aws.path_style, aws.profile) == (None, "us-west-2", False, None)


# --- Azure Blob on Azurite ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def azurite(history: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's Blob service on a free port (installed from npm on first use), holding the history."""
    binary = ensure_azurite()
    port = _free_port()
    work = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen([str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
                             str(work), "--silent", "--skipApiVersionCheck", "--loose"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Azurite did not start: {proc.stderr.read() if proc.stderr else b''!r}")
            time.sleep(0.1)
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}",
                                    credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})
        container = service.create_container("state")
        for key, body in _files(history).items():
            container.upload_blob(f"teams/{key}", body)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def _azure_url(host: str) -> str:
    return f"azblob://state/teams?storage_account={AZURITE_ACCOUNT}&domain={host}&protocol=http&localemu=true"


@pytest.fixture
def no_azure_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
                 "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_azure_blob_with_a_shared_key(azurite: str, history: Path, no_azure_env: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    no_azure_env.setenv("AZURE_STORAGE_KEY", AZURITE_KEY)
    assert _events(_azure_url(azurite)) == _events(f"file://{history}")
    code = main(["audit", "--backend", _azure_url(azurite), "--no-progress", "--format", "json",
                 "--team", "ml-research", "--kind", "destroy"])
    out = capsys.readouterr().out
    assert code == 0 and [e["stack"] for e in json.loads(out)["events"]] == ["ml-research"]


def test_azure_blob_with_a_connection_string_or_a_sas_token(azurite: str, history: Path,
                                                            no_azure_env: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    no_azure_env.setenv("AZURE_STORAGE_CONNECTION_STRING",
                        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                        f"BlobEndpoint=http://{azurite}/{AZURITE_ACCOUNT};")
    assert _events(f"azblob://state/teams?storage_account={AZURITE_ACCOUNT}") == _events(f"file://{history}")
    no_azure_env.delenv("AZURE_STORAGE_CONNECTION_STRING")
    sas = generate_container_sas(AZURITE_ACCOUNT, "state", account_key=AZURITE_KEY,
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=datetime.now(UTC) + timedelta(hours=1))
    no_azure_env.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    assert _events(_azure_url(azurite)) == _events(f"file://{history}")


def test_azure_blob_with_a_wrong_key_or_no_account_says_what_to_fix(azurite: str,
                                                                    no_azure_env: pytest.MonkeyPatch) -> None:
    no_azure_env.setenv("AZURE_STORAGE_KEY", "bm90LXRoZS1rZXk=")
    with pytest.raises(SourceError, match="Azure Blob list on azblob://state failed: HTTP 403") as err:
        open_source(_azure_url(azurite)).stacks()
    assert "bm90LXRoZS1rZXk=" not in str(err.value)
    with pytest.raises(SourceError, match=r"storage_account=NAME.*AZURE_STORAGE_ACCOUNT"):
        open_source("azblob://state")


def test_a_missing_extra_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def without_sdks(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith(("boto3", "azure")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", without_sdks)
    with pytest.raises(SourceError, match=r"pip install 'vastguard\[s3\]'"):
        open_source("s3://state")
    with pytest.raises(SourceError, match=r"pip install 'vastguard\[azure\]'"):
        open_source("azblob://state?storage_account=x")
