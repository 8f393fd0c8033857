"""Scale-out state: a team stack on an S3-compatible state backend (moto's S3 server on loopback), end to end.

The stack is deployed through the real engine with the policy pack, its history is read back from the bucket by
`vastguard audit` and `vastguard spend` (the reports' own S3 reader, not the Pulumi CLI), and it is destroyed.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from emulator import EmulatorServer
from engine import Engine, repo_root
from vastguard.workspace import Workspace

pytestmark = pytest.mark.engine

TEAM = "data-science"
BUCKET = "vastguard-state"
# moto accepts any credentials; these are test-only values, never real ones.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def backend_url(endpoint: str) -> str:
    return f"s3://{BUCKET}?endpoint={endpoint}&s3ForcePathStyle=true&region=us-east-1"


def vastguard(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(repo_root() / ".venv" / "bin" / "vastguard"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_team_stack_on_s3_backend(engine: Engine, pulumi_home: Path, tmp_path: Path, s3_endpoint: str) -> None:
    backend = backend_url(s3_endpoint)
    api_key = f"{TEAM}-{secrets.token_hex(16)}"
    with EmulatorServer(port=0, seed=7, provision_delay=0) as emulator:
        account = emulator.create_account(api_key=api_key, balance=1000, username=TEAM)
        ws = Workspace.create(engine, tmp_path / "ws", state_dir=tmp_path / "unused-state",
                              extra_env={"PULUMI_HOME": str(pulumi_home), "PULUMI_BACKEND_URL": backend, **AWS_ENV})
        ws.init_team(TEAM, api_key=api_key, vast_url=emulator.url)
        ws.up(TEAM, message="s3 backend e2e")
        live = emulator.market.all_instances(account)[0]
        assert len(live) == 1
        assert ws.outputs(TEAM)["estimated_cost"]["hourly"] > 0

        # The state is in the bucket, not on disk.
        keys = [o["Key"] for o in boto3.client(
            "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        assert any(k.startswith(".pulumi/") for k in keys), keys
        assert not list((tmp_path / "unused-state").glob("**/*.json"))

        # Reports read the history straight from the bucket.
        env = {**os.environ, **AWS_ENV}
        env.pop("PULUMI_BACKEND_URL", None)
        audit = vastguard("audit", "--backend", backend, "--no-progress", "--format", "json", env=env, cwd=tmp_path)
        assert audit.returncode == 0, audit.stderr
        events = json.loads(audit.stdout)
        assert TEAM in audit.stdout
        assert events, audit.stdout
        spend = vastguard("spend", "--backend", backend, "--no-progress", "--by", "month", "--format", "json",
                          env=env, cwd=tmp_path)
        assert spend.returncode == 0, spend.stderr
        assert TEAM in spend.stdout

        ws.destroy(TEAM)
        assert emulator.market.all_instances(account)[0] == []
        audit = vastguard("audit", "--backend", backend, "--no-progress", "--format", "json", "--kind", "destroy",
                          env=env, cwd=tmp_path)
        assert audit.returncode == 0, audit.stderr
        assert json.loads(audit.stdout), audit.stdout
    # The key never lands in the bucket.
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        assert api_key.encode() not in s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
