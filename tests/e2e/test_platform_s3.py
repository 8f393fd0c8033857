"""Key delivery on an S3 state backend (moto's S3 server on loopback), through the real engine: the platform
stack lives in the bucket, and a team's preview and deploy open their keys from its envelopes there, read as
files with the bucket's credentials and without the platform's passphrase."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from emulator import EmulatorServer
from engine import Engine
from tests.e2e.platform_env import TEAMS, build_platform
from tests.e2e.test_s3_backend import AWS_ENV, BUCKET, backend_url, s3_endpoint  # noqa: F401 (the fixture)
from vastguard import keys

pytestmark = pytest.mark.engine


def test_a_team_previews_and_deploys_with_keys_from_a_platform_stack_in_s3(
        engine: Engine, tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)  # the bucket's credentials, as the team's job has them
    backend = backend_url(s3_endpoint)
    with EmulatorServer(port=0, seed=7, provision_delay=0) as emulator:
        platform = build_platform(engine, tmp_path, emulator, extra_env={"PULUMI_BACKEND_URL": backend, **AWS_ENV})
        s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        stored = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
        assert ".pulumi/stacks/vastguard/platform.json" in stored
        assert not list((tmp_path / "state").glob("**/*.json"))  # nothing on disk: the state is in the bucket

        # The team's job holds the bucket's credentials and its recipient secret, not the platform's passphrase.
        without_passphrase = {k: v for k, v in platform.ws.cli.env.items() if not k.startswith("PULUMI_CONFIG_PASS")}
        source = keys.key_source(platform.ws.root, "data-science")
        assert source is not None
        delivered = keys.deliver(source, "preview", backend_url=backend, project="vastguard",
                                 environ=without_passphrase)
        assert delivered.key_id == platform.key_id("data-science", "preview")

        preview = platform.ws.preview("data-science")
        assert preview.returncode == 0, platform.text(preview)[-3000:]
        platform.ws.up("data-science", message="on s3")
        assert len(platform.live("data-science")) == 1
        platform.ws.destroy("data-science")
        assert platform.live("data-science") == []
        issued = [platform.owner.api_key, *platform.console_keys.values(),
                  *(platform.key(team, kind) for team in TEAMS for kind in ("preview", "deploy"))]
    # No key lands in the bucket in the clear (the platform's keys are secrets there, the teams' state has none).
    for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        assert not [key for key in issued if key.encode() in body], obj["Key"]
