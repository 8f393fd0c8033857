"""Key delivery (vastguard/keys.py): which command gets which key, where a stack's key comes from, and opening a
team's envelope from the platform stack's checkpoint in a file and an S3 backend, with every failure naming what
to set or run. The engine tests (tests/e2e/test_platform.py) run the same through `pulumi`."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import boto3
import pytest

from budget.keys import EnvKeys, KeyProblem
from fleet.access_fields import recipient_env
from fleet.envelope import seal
from tests.e2e.test_s3_backend import AWS_ENV, BUCKET, backend_url, s3_endpoint  # noqa: F401 (the fixture)
from tests.secrets_sweep import record_api_key
from vastclient import API_KEY_ENV
from vastguard.keys import (
    DeliveredKeys,
    DeliveryError,
    KeySource,
    command_kind,
    deliver,
    delivered_env,
    key_source,
    project_dir_of_args,
    read_key_of,
    stack_of_args,
)

TEAM = "ml-research"
KEYS = {kind: "vk-" + secrets.token_hex(24) for kind in ("preview", "deploy")}
SECRETS = {recipient_env(team, kind): secrets.token_urlsafe(32) for team in (TEAM, "data-science")
           for kind in ("preview", "deploy")}
SOURCE = KeySource(stack=TEAM, team=TEAM, platform_stack="platform")


@pytest.fixture(autouse=True)
def _swept() -> None:
    for key in KEYS.values():
        record_api_key(key)


@pytest.mark.parametrize(("argv", "expected"), [
    (["preview", "--stack", "x"], ("preview", "preview")),
    (["--cwd", "up", "up", "--yes"], ("up", "deploy")),  # the value of a global flag is not the command
    (["-C", "dir", "destroy"], ("destroy", "deploy")),
    (["refresh", "-s", "x"], ("refresh", "deploy")),
    (["stack", "ls"], ("stack", None)),
    (["config", "set", "up", "1"], ("config", None)),
    (["--non-interactive"], (None, None)),
])
def test_which_command_gets_which_key(argv: list[str], expected: tuple[str | None, str | None]) -> None:
    assert command_kind(argv) == expected


def test_stack_and_project_directory_from_the_command_line(tmp_path: Path) -> None:
    assert stack_of_args(["preview", "--stack", "a"]) == "a" == stack_of_args(["up", "--stack=a"])
    assert stack_of_args(["up", "-s", "a"]) == "a" and stack_of_args(["up"]) is None
    assert project_dir_of_args(["-C", "ws", "up"], tmp_path) == (tmp_path / "ws").resolve()
    assert project_dir_of_args(["up"], tmp_path) == tmp_path


def project(tmp_path: Path, **stacks: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "Pulumi.yaml").write_text("name: vastguard\nruntime: python\nstackConfigDir: stacks\n")
    (tmp_path / "stacks").mkdir(exist_ok=True)
    for name, config in stacks.items():
        (tmp_path / "stacks" / f"Pulumi.{name}.yaml").write_text(config)
    return tmp_path


def test_where_a_stacks_key_comes_from(tmp_path: Path) -> None:
    root = project(tmp_path, **{
        "ml-research": "config:\n  vastguard:team: ml-research\n  vastguard:keyFrom: platform\n",
        "own": "config:\n  vastguard:team: own\n  vastai:apiKey:\n    secure: v1:abc\n",
        "both": ("config:\n  vastguard:team: both\n  vastguard:keyFrom: platform\n  vastai:apiKey:\n"
                 "    secure: v1:abc\n"),
        "other": "config:\n  vastguard:team: x-team\n  vastguard:keyFrom: infra/platform\n"})
    assert key_source(root, "ml-research") == SOURCE
    assert key_source(root, "org/vastguard/ml-research") == SOURCE  # a fully qualified stack name
    assert key_source(root, "own") is None and key_source(root, "missing") is None
    assert key_source(root, "other") == KeySource(stack="other", team="x-team", platform_stack="platform",
                                                  platform_project="infra")
    with pytest.raises(DeliveryError, match=r"stack both sets both vastai:apiKey and vastguard:keyFrom: .*"
                                            r"pulumi config rm vastai:apiKey --stack both"):
        key_source(root, "both")


def checkpoint(envelopes: dict[str, Any], *, pending: list[str] | None = None, platform: bool = True) -> bytes:
    outputs = {"platform": platform, "key_envelopes": envelopes, "pending_bootstrap": pending or []}
    return json.dumps({"version": 3, "checkpoint": {"latest": {"resources": [
        {"urn": "urn:pulumi:platform::vastguard::pulumi:pulumi:Stack::vastguard-platform",
         "type": "pulumi:pulumi:Stack", "outputs": outputs}]}}}).encode()


def envelopes(team: str = TEAM) -> dict[str, Any]:
    return {team: {kind: seal(KEYS[kind], secret=SECRETS[recipient_env(team, kind)], team=team, kind=kind,  # type: ignore[arg-type]
                              key_id=500005 + i, key_name=f"vastguard/{team}/{kind}/2026-11-01",
                              rotation="2026-11-01", sealed_at="2026-12-01T00:00:00Z").model_dump(mode="json")
                   for i, kind in enumerate(("preview", "deploy"))}}


def file_backend(tmp_path: Path, data: bytes) -> str:
    state = tmp_path / "state"
    (state / ".pulumi" / "stacks" / "vastguard").mkdir(parents=True)
    (state / ".pulumi" / "meta.yaml").write_text("version: 1\n")
    (state / ".pulumi" / "stacks" / "vastguard" / "platform.json").write_bytes(data)
    return f"file://{state}"


def test_the_team_job_opens_its_own_kind_of_key_and_no_other(tmp_path: Path) -> None:
    backend = file_backend(tmp_path, checkpoint(envelopes()))
    preview = deliver(SOURCE, "preview", backend_url=backend, project="vastguard", environ=SECRETS)
    assert (preview.key, preview.key_id, preview.rotation) == (KEYS["preview"], 500005, "2026-11-01")
    assert preview.env() == {API_KEY_ENV: KEYS["preview"]} and KEYS["preview"] not in repr(preview)
    assert KEYS["preview"] not in preview.describe()
    # A preview job holds the preview secret only: it cannot open the deploy key.
    only_preview = {recipient_env(TEAM, "preview"): SECRETS[recipient_env(TEAM, "preview")]}
    with pytest.raises(DeliveryError, match=r"ml-research's deploy key: VASTGUARD_DEPLOY_SECRET_ML_RESEARCH is not "
                                            r"set"):
        deliver(SOURCE, "deploy", backend_url=backend, project="vastguard", environ=only_preview)
    # Nor can it open the deploy envelope by holding the preview secret under the deploy name.
    swapped = {recipient_env(TEAM, "deploy"): SECRETS[recipient_env(TEAM, "preview")]}
    with pytest.raises(DeliveryError, match=r"VASTGUARD_DEPLOY_SECRET_ML_RESEARCH does not open ml-research's deploy "
                                            r"key envelope \(key #500006\)"):
        deliver(SOURCE, "deploy", backend_url=backend, project="vastguard", environ=swapped)


def test_the_guard_opens_a_platform_teams_deploy_key_and_prefers_a_key_of_its_own(tmp_path: Path) -> None:
    root = project(tmp_path / "repo", **{
        TEAM: f"config:\n  vastguard:team: {TEAM}\n  vastguard:keyFrom: platform\n",
        "own": "config:\n  vastguard:team: own\n"})
    backend = file_backend(tmp_path, checkpoint(envelopes()))
    deploy = {recipient_env(TEAM, "deploy"): SECRETS[recipient_env(TEAM, "deploy")]}
    keys = DeliveredKeys(EnvKeys(deploy), project_dir=root, backend_url=backend, environ=deploy)
    assert keys.team_key(TEAM) == KEYS["deploy"] == keys.owner_key(TEAM)  # instance write: the guard stops GPUs
    assert keys.team_key("own") is None and keys.platform_key() is None and KEYS["deploy"] not in repr(keys)
    own = {"VASTGUARD_KEY_ML_RESEARCH": "vk-own-" + "0" * 24, **deploy}
    assert DeliveredKeys(EnvKeys(own), project_dir=root, backend_url=backend, environ=own).team_key(TEAM) == (
        own["VASTGUARD_KEY_ML_RESEARCH"])
    # Without the deploy secret there is no key (the guard says what to export); a wrong one is a KeyProblem.
    assert DeliveredKeys(EnvKeys({}), project_dir=root, backend_url=backend, environ={}).team_key(TEAM) is None
    wrong = {recipient_env(TEAM, "deploy"): SECRETS[recipient_env(TEAM, "preview")]}
    with pytest.raises(KeyProblem, match=r"VASTGUARD_DEPLOY_SECRET_ML_RESEARCH does not open"):
        DeliveredKeys(EnvKeys(wrong), project_dir=root, backend_url=backend, environ=wrong).team_key(TEAM)


def test_the_reports_read_a_platform_teams_charges_with_its_preview_key(tmp_path: Path) -> None:
    root = project(tmp_path / "repo", **{
        TEAM: f"config:\n  vastguard:team: {TEAM}\n  vastguard:keyFrom: platform\n",
        "own": "config:\n  vastguard:team: own\n"})
    backend = file_backend(tmp_path, checkpoint(envelopes()))
    preview = SECRETS[recipient_env(TEAM, "preview")]
    for env in ({recipient_env(TEAM, "preview"): preview}, {"VASTGUARD_PREVIEW_SECRET": preview}):  # a CI job's
        assert read_key_of(TEAM, project_dir=root, backend_url=backend, environ=env) == KEYS["preview"]
    # The deploy secret is not the reports' (they only read): without the preview secret there is no key.
    deploy_only = {recipient_env(TEAM, "deploy"): SECRETS[recipient_env(TEAM, "deploy")]}
    assert read_key_of(TEAM, project_dir=root, backend_url=backend, environ=deploy_only) is None
    assert read_key_of("own", project_dir=root, backend_url=backend, environ={"VASTGUARD_PREVIEW_SECRET": preview}) \
        is None
    with pytest.raises(DeliveryError, match=r"VASTGUARD_PREVIEW_SECRET_ML_RESEARCH does not open"):
        read_key_of(TEAM, project_dir=root, backend_url=backend,
                    environ={"VASTGUARD_PREVIEW_SECRET": SECRETS[recipient_env(TEAM, "deploy")]})


def test_another_teams_envelope_under_this_teams_name_is_refused(tmp_path: Path) -> None:
    theirs = envelopes("data-science")["data-science"]
    backend = file_backend(tmp_path, checkpoint({TEAM: theirs}))
    with pytest.raises(DeliveryError, match=r"is sealed for data-science's preview job, not ml-research's preview "
                                            r"job"):
        deliver(SOURCE, "preview", backend_url=backend, project="vastguard", environ=SECRETS)


@pytest.mark.parametrize(("data", "needle"), [
    (checkpoint({}), "team ml-research is not in the platform stack's declaration: add it with "
                     "`vastguard team add ml-research`"),
    (checkpoint({}, pending=[TEAM]), "the platform holds no key inside team ml-research yet"),
    (checkpoint(envelopes(), platform=False), "stack platform (named by vastguard:keyFrom in stack ml-research) is "
                                              "not a platform stack"),
])
def test_what_is_missing_is_said(tmp_path: Path, data: bytes, needle: str) -> None:
    backend = file_backend(tmp_path, data)
    with pytest.raises(DeliveryError) as err:
        deliver(SOURCE, "preview", backend_url=backend, project="vastguard", environ=SECRETS)
    assert needle in str(err.value)


def test_no_platform_stack_in_the_backend(tmp_path: Path) -> None:
    backend = file_backend(tmp_path, checkpoint(envelopes()))
    with pytest.raises(DeliveryError, match=r"cannot read the platform stack platform-2: no stack 'platform-2' of "
                                            r"project 'vastguard'"):
        deliver(KeySource(stack=TEAM, team=TEAM, platform_stack="platform-2"), "preview", backend_url=backend,
                project="vastguard", environ=SECRETS)


def test_only_commands_that_need_a_key_of_stacks_that_take_one_get_it(tmp_path: Path) -> None:
    root = project(tmp_path / "project", **{"ml-research": "config:\n  vastguard:keyFrom: platform\n",
                                            "own": "config:\n  vastguard:team: own\n"})
    backend = file_backend(tmp_path, checkpoint(envelopes()))
    env = {**SECRETS, "PULUMI_BACKEND_URL": backend}
    logged: list[str] = []

    def run(*argv: str) -> dict[str, str]:
        return delivered_env(list(argv), project_dir=root, env=env, stack_lookup=lambda: "ml-research",
                             log=logged.append)

    assert run("up", "--stack", "ml-research") == {API_KEY_ENV: KEYS["deploy"]}
    assert run("preview") == {API_KEY_ENV: KEYS["preview"]}  # the selected stack
    assert run("stack", "output") == {} and run("preview", "--stack", "own") == {}
    assert logged == ["vastguard: ml-research's deploy key #500006 (rotation 2026-11-01), from the platform stack "
                      "platform", "vastguard: ml-research's preview key #500005 (rotation 2026-11-01), from the "
                      "platform stack platform"]


@pytest.fixture
def s3_backend(s3_endpoint: str) -> tuple[str, Any]:  # noqa: F811
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    return backend_url(s3_endpoint), s3


def test_the_envelope_is_read_from_an_s3_backend_too(s3_backend: tuple[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url, s3 = s3_backend
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    s3.put_object(Bucket=BUCKET, Key=".pulumi/meta.yaml", Body=b"version: 1\n")
    s3.put_object(Bucket=BUCKET, Key=".pulumi/stacks/vastguard/platform.json", Body=checkpoint(envelopes()))
    delivered = deliver(SOURCE, "deploy", backend_url=url, project="vastguard", environ=SECRETS)
    assert delivered.key == KEYS["deploy"]


def test_a_ci_job_gives_its_secret_without_the_team_in_the_name_and_only_for_its_kind(tmp_path: Path) -> None:
    from typing import cast

    from engine import Engine
    from vastguard import ci
    from vastguard.pulumi_cli import PulumiCLI

    root = project(tmp_path / "project",
                   **{TEAM: f"config:\n  vastguard:team: {TEAM}\n  vastguard:keyFrom: platform\n"})
    backend = file_backend(tmp_path, checkpoint(envelopes()))
    preview_job = {"PULUMI_BACKEND_URL": backend,
                   "VASTGUARD_PREVIEW_SECRET": SECRETS[recipient_env(TEAM, "preview")]}  # as preview.yml sets it
    cli = PulumiCLI(engine=cast(Engine, None), cwd=root, env=preview_job)  # a file backend: no pulumi is run
    assert ci.key_env(cli, TEAM, "preview") == {API_KEY_ENV: KEYS["preview"]}
    assert ci.key_used(root, TEAM, "preview") == "preview" and ci.key_used(root, TEAM, "up") == "deploy"
    with pytest.raises(DeliveryError, match="VASTGUARD_DEPLOY_SECRET_ML_RESEARCH is not set"):
        ci.key_env(cli, TEAM, "up")  # the preview job's secret never stands in for the deploy secret
    deploy_job = PulumiCLI(engine=cast(Engine, None), cwd=root, env={
        "PULUMI_BACKEND_URL": backend, "VASTGUARD_DEPLOY_SECRET": SECRETS[recipient_env(TEAM, "deploy")]})
    assert ci.key_env(deploy_job, TEAM, "up") == {API_KEY_ENV: KEYS["deploy"]}
    own = project(tmp_path / "own", own="config:\n  vastguard:team: own\n  vastai:apiKey:\n    secure: v1:abc\n")
    assert ci.key_used(own, "own", "preview") == "own" and ci.key_used(own, "none", "preview") == "none"


def test_the_pulumi_child_of_a_team_stack_gets_none_of_the_jobs_secrets(tmp_path: Path) -> None:
    from typing import cast

    from engine import Engine
    from vastguard import ci
    from vastguard.pulumi_cli import PulumiCLI

    root = project(tmp_path, **{TEAM: "config:\n  vastguard:keyFrom: platform\n",
                                "platform": "config:\n  vastguard:platform:\n    teams: {}\n"})
    env = {"VASTGUARD_PREVIEW_SECRET": "s", "VASTGUARD_DEPLOY_SECRET_ML_RESEARCH": "s",
           "VASTGUARD_PASSPHRASE_ML_RESEARCH": "p", "VASTGUARD_PROVISION_TIMEOUT": "60",
           "PULUMI_CONFIG_PASSPHRASE": "p"}
    cli = PulumiCLI(engine=cast(Engine, None), cwd=root, env=env)
    assert sorted(ci.child_drop(cli, TEAM)) == [
        "VASTGUARD_DEPLOY_SECRET_ML_RESEARCH", "VASTGUARD_PASSPHRASE_ML_RESEARCH", "VASTGUARD_PREVIEW_SECRET"]
    assert ci.child_drop(cli, "platform") == []  # its ApiKey resources seal the envelopes with them
