"""vastguard/bucket_policy.py: each team's CI role reaches its own stack's objects in the state bucket, reads the
platform's checkpoint (envelopes), and nothing else. Judged here by a small evaluator of the policy's own
statements (explicit deny wins, then allow, else deny: IAM's order); the engine test
(tests/e2e/test_team_secrets.py) checks it against the objects the real engine writes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from vastguard.bucket_policy import bucket_policy
from vastguard.cli import main

BUCKET, PROJECT = "state", "vastguard"
ROLES = {team: f"arn:aws:iam::123456789012:role/ci-{team}" for team in ("data-science", "ml-research")}
PLATFORM = "arn:aws:iam::123456789012:role/ci-platform"


def _match(pattern: str, value: str) -> bool:
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), value) is not None


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def allowed(policy: dict[str, Any], role: str, action: str, key: str | None = None,
            prefix: str | None = None) -> bool:
    """IAM's decision for the bucket policy alone: `key` for object actions, `prefix` for s3:ListBucket."""
    resource = f"arn:aws:s3:::{BUCKET}" + ("" if key is None else f"/{key}")
    decisions = set()
    for st in policy["Statement"]:
        if st["Principal"]["AWS"] != role or not any(_match(a, action) for a in _listed(st["Action"])):
            continue
        if "Resource" in st and not any(_match(r, resource) for r in _listed(st["Resource"])):
            continue
        if "NotResource" in st and any(_match(r, resource) for r in _listed(st["NotResource"])):
            continue
        like = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if like is not None and (prefix is None or not any(_match(p, prefix) for p in like)):
            continue
        decisions.add(st["Effect"])
    return "Deny" not in decisions and "Allow" in decisions


POLICY = bucket_policy(BUCKET, PROJECT, ROLES, platform_role=PLATFORM)
DS, MR = ROLES["data-science"], ROLES["ml-research"]


@pytest.mark.parametrize("key", [
    ".pulumi/stacks/vastguard/data-science.json", ".pulumi/stacks/vastguard/data-science.json.gz",
    ".pulumi/stacks/vastguard/data-science.json.bak",
    ".pulumi/history/vastguard/data-science/data-science-1764633600000000000.history.json",
    ".pulumi/history/vastguard/data-science/data-science-1764633600000000000.checkpoint.json",
    ".pulumi/backups/vastguard/data-science/data-science.1764633600000000000.json",
    ".pulumi/locks/organization/vastguard/data-science/7f3a.json",
    ".vastguard/guard/data-science/00000001-crossing.json", ".vastguard/actions/data-science/1-9-stop.json",
    ".vastguard/ledger/data-science/00000001.json",
])
def test_a_team_reads_and_writes_its_own_stack_and_no_other_team_does(key: str) -> None:
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert allowed(POLICY, DS, action, key), (action, key)
        assert not allowed(POLICY, MR, action, key), (action, key)


@pytest.mark.parametrize("key", [
    ".pulumi/stacks/vastguard/data-science-2.json",  # a team whose name starts with another's
    ".pulumi/stacks/other-project/data-science.json", ".pulumi/history/vastguard/ml-research/x.history.json",
    "elsewhere/data-science.json",
])
def test_nothing_beyond_its_own_stack(key: str) -> None:
    assert not allowed(POLICY, DS, "s3:GetObject", key) and not allowed(POLICY, DS, "s3:PutObject", key)


def test_the_platform_checkpoint_is_readable_by_every_team_and_writable_by_none() -> None:
    for role in (DS, MR):
        for key in (".pulumi/stacks/vastguard/platform.json", ".pulumi/meta.yaml"):
            assert allowed(POLICY, role, "s3:GetObject", key)
            assert not allowed(POLICY, role, "s3:PutObject", key) and not allowed(POLICY, role, "s3:DeleteObject",
                                                                                  key)
    assert not allowed(POLICY, DS, "s3:GetObject", ".pulumi/history/vastguard/platform/p-1.checkpoint.json")
    assert allowed(POLICY, PLATFORM, "s3:PutObject", ".pulumi/stacks/vastguard/platform.json")
    assert allowed(POLICY, PLATFORM, "s3:GetObject", ".pulumi/history/vastguard/data-science/x.history.json")
    assert not allowed(POLICY, PLATFORM, "s3:PutObject", ".pulumi/stacks/vastguard/data-science.json")
    assert allowed(POLICY, PLATFORM, "s3:PutObject", ".vastguard/ledger/data-science/00000002.json")  # allocate


def test_listing_is_confined_to_the_prefixes_the_engine_lists() -> None:
    for prefix in (".pulumi/stacks/", ".pulumi/stacks/vastguard/", ".pulumi/stacks/vastguard/data-science.json",
                   ".pulumi/history/vastguard/data-science/", ".pulumi/locks/organization/vastguard/data-science/"):
        assert allowed(POLICY, DS, "s3:ListBucket", prefix=prefix), prefix
    for denied in (".pulumi/history/vastguard/ml-research/", ".pulumi/backups/vastguard/ml-research/", "", None):
        assert not allowed(POLICY, DS, "s3:ListBucket", prefix=denied), denied


def test_the_command_prints_it_for_the_repositorys_teams(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ci", "bucket-policy", "--bucket", BUCKET, "--role-arn",
                 "arn:aws:iam::123456789012:role/ci-{team}"]) == 0
    policy = json.loads(capsys.readouterr().out)
    assert {s["Principal"]["AWS"] for s in policy["Statement"]} == {
        f"arn:aws:iam::123456789012:role/ci-{t}" for t in ("data-science", "ml-engineering", "ml-research")}
    assert main(["ci", "bucket-policy", "--bucket", BUCKET, "--role-arn", "arn:aws:iam::1:role/shared"]) == 1
    assert "--role-arn must contain {team}" in capsys.readouterr().err
