"""Secrets per team through the real engine: each team stack encrypts with its own passphrase (the CI secret
`VASTGUARD_PASSPHRASE_<TEAM>` that `vastguard ci changed`'s matrix names, which the workflows put in
PULUMI_CONFIG_PASSPHRASE), so team A's job environment cannot decrypt team B's stack config, outputs or state;
and the bucket policy (`vastguard ci bucket-policy`) gives each team's role exactly the objects the engine wrote
for its own stack."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml

from engine import Engine
from tests.ci.test_bucket_policy import allowed
from tests.e2e.conftest import write_project
from tests.secrets_sweep import record_api_key, record_passphrase
from vastguard import ci
from vastguard.bucket_policy import bucket_policy
from vastguard.pulumi_cli import PulumiCLI

pytestmark = pytest.mark.engine

A, B = "ml-research", "data-science"
PROGRAM = ('import pulumi\n'
           'pulumi.export("key", pulumi.Config("vastai").require_secret("apiKey"))\n')


def job_cli(engine: Engine, project: Path, tmp_path: Path, repo_secrets: dict[str, str], team: str) -> PulumiCLI:
    """The environment of `team`'s CI job: its passphrase, read through the matrix's secret name."""
    entry = ci.matrix([team])["include"][0]
    return PulumiCLI.for_project(engine, project, state_dir=tmp_path / "state", extra_env={
        "PULUMI_HOME": str(tmp_path / f"home-{team}"), "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": repo_secrets[entry["passphrase"]]})


def test_team_as_job_cannot_decrypt_team_bs_config_or_state(engine: Engine, tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_project(project, name="vastguard", main=PROGRAM)
    repo_secrets = {ci.passphrase_name(team): secrets.token_urlsafe(24) for team in (A, B)}
    key = "vk-" + secrets.token_hex(24)
    record_api_key(key)
    job_a, job_b = (job_cli(engine, project, tmp_path, repo_secrets, team) for team in (A, B))
    job_a.run("stack", "init", A)
    job_b.run("stack", "init", B)
    job_b.set_secret("vastai:apiKey", key, stack=B)
    job_b.run("up", "--yes", "--skip-preview", stack=B)  # the secret in B's state too (an output)

    salts = {team: yaml.safe_load((project / f"Pulumi.{team}.yaml").read_text())["encryptionsalt"] for team in (A, B)}
    assert salts[A] != salts[B]
    for team in (A, B):  # so the secrets sweep opens these stacks' engine logs too
        record_passphrase(repo_secrets[ci.passphrase_name(team)], salts[team])
    # B's own job reads its secrets...
    assert job_b.run("config", "get", "vastai:apiKey", stack=B).stdout.strip() == key
    assert key in job_b.run("stack", "output", "--show-secrets", stack=B).stdout
    # ...team A's job, with everything it holds, cannot: not the config, not the outputs, not the state.
    for argv in (("config", "--show-secrets"), ("config", "get", "vastai:apiKey"),
                 ("stack", "output", "--show-secrets"), ("stack", "export", "--show-secrets")):
        result = job_a.run(*argv, stack=B, check=False)
        assert result.returncode != 0, argv
        assert key not in result.stdout + result.stderr
        assert "passphrase" in (result.stdout + result.stderr).lower(), (argv, result.stderr[-500:])
    # Without --show-secrets the state reads, but only as ciphertext (what a report needs, nothing more).
    exported = job_a.run("stack", "export", stack=B).stdout
    assert key not in exported and "ciphertext" in exported

    # In a shared bucket, the bucket policy keeps A's job from even that: every object the engine wrote, under
    # the keys it really uses, is reachable by its own team's role only.
    state = tmp_path / "state"
    keys = sorted(str(p.relative_to(state)) for p in state.rglob("*") if p.is_file())
    roles = {team: f"arn:aws:iam::123456789012:role/ci-{team}" for team in (A, B)}
    policy = bucket_policy("state", "vastguard", roles)
    kinds = {k.split("/")[1] for k in keys if k.startswith(".pulumi/") and f"/{B}" in k}
    assert {"stacks", "history", "backups"} <= kinds, keys
    for object_key in keys:
        for team, role in roles.items():
            mine = f"/vastguard/{team}/" in object_key or object_key.endswith(f"/vastguard/{team}.json") or \
                object_key.startswith(f".pulumi/stacks/vastguard/{team}.json")
            shared = object_key == ".pulumi/meta.yaml"
            assert allowed(policy, role, "s3:GetObject", object_key) == (mine or shared), (team, object_key)
            assert allowed(policy, role, "s3:PutObject", object_key) == mine, (team, object_key)
