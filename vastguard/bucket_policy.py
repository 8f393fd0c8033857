"""The S3 bucket policy that confines each team's CI role to its own stacks in a shared state bucket
(`vastguard ci bucket-policy`; README "Secrets per team").

The object keys are those of Pulumi's DIY backend in project mode (pulumi/pulumi pkg/backend/diy, v3.259:
store.go, state.go, lock.go):

- `.pulumi/stacks/<project>/<stack>.json` (or `.json.gz` / `.json.zst`; `.json.bak` beside it): the checkpoint
- `.pulumi/history/<project>/<stack>/`: one `.history.json` and one `.checkpoint.json` per update
- `.pulumi/backups/<project>/<stack>/`: a backup of each checkpoint it replaces
- `.pulumi/locks/organization/<project>/<stack>/<id>.json`: the lock an update holds
- `.pulumi/meta.yaml`: the layout's version, read by every command

and vastguard's budget log beside them (`.vastguard/ledger|guard|actions/<team>/`, fleet/budget_log.py).

The engine lists `.pulumi/stacks/` (projects), `.pulumi/stacks/<project>/` (stacks), the stack's own checkpoint
name (to find its compressed variant) and its history and lock directories. A team's role may read and write its
own stack's objects, list those prefixes, and read the platform stack's checkpoint (its key envelopes are plain
outputs; each opens only with the job's recipient secret) and meta.yaml; every other object is denied outright,
so a team's job cannot read another team's state or history, or write the platform's. Stack *names* are listable
(they are in the repository anyway); their contents are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleet.budget_log import ROOT

__all__ = ["bucket_policy", "team_prefixes"]

OBJECT_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
BUDGET_LOGS = ("ledger", "guard", "actions")


def team_prefixes(project: str, stack: str) -> list[str]:
    """Key patterns (`*` = anything) of one stack's objects in a DIY backend, and of its team's budget log
    (fleet/budget_log.py: `.vastguard/{ledger,guard,actions}/<team>/`, which the guard writes and previews read)."""
    return [f".pulumi/stacks/{project}/{stack}.json*", f".pulumi/history/{project}/{stack}/*",
            f".pulumi/backups/{project}/{stack}/*", f".pulumi/locks/organization/{project}/{stack}/*",
            *(f"{ROOT}/{kind}/{stack}/*" for kind in BUDGET_LOGS)]


def bucket_policy(bucket: str, project: str, roles: Mapping[str, str], *, platform_stack: str = "platform",
                  platform_role: str | None = None) -> dict[str, Any]:
    """The bucket policy: per team (name -> its CI role's ARN) its own stack's objects, read of the platform's
    checkpoint; the platform role (if given) its own stack and read of everything (the reports)."""
    arn = f"arn:aws:s3:::{bucket}"
    statements: list[dict[str, Any]] = []
    for team, role in sorted(roles.items()):
        own = [f"{arn}/{p}" for p in team_prefixes(project, team)]
        shared = [f"{arn}/.pulumi/meta.yaml", f"{arn}/.pulumi/stacks/{project}/{platform_stack}.json*"]
        sid = "".join(part.capitalize() for part in team.split("-"))
        statements += [
            {"Sid": f"{sid}OwnStack", "Effect": "Allow", "Principal": {"AWS": role}, "Action": OBJECT_ACTIONS,
             "Resource": own},
            {"Sid": f"{sid}ReadPlatformEnvelopes", "Effect": "Allow", "Principal": {"AWS": role},
             "Action": ["s3:GetObject"], "Resource": shared},
            {"Sid": f"{sid}List", "Effect": "Allow", "Principal": {"AWS": role}, "Action": ["s3:ListBucket"],
             "Resource": arn, "Condition": {"StringLike": {"s3:prefix": [
                 ".pulumi/stacks/", f".pulumi/stacks/{project}/", f".pulumi/stacks/{project}/{team}.json*",
                 f".pulumi/stacks/{project}/{platform_stack}.json*", f".pulumi/history/{project}/{team}/*",
                 f".pulumi/backups/{project}/{team}/*", f".pulumi/locks/organization/{project}/{team}/*",
                 *(f"{ROOT}/{kind}/{team}/*" for kind in BUDGET_LOGS)]}}},
            # An explicit deny wins over any broader grant the role may get elsewhere (an identity policy).
            {"Sid": f"{sid}NothingElse", "Effect": "Deny", "Principal": {"AWS": role}, "Action": "s3:*",
             "NotResource": [arn, *own, *shared]},
            {"Sid": f"{sid}ReadOnlyPlatform", "Effect": "Deny", "Principal": {"AWS": role},
             "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": shared},
        ]
    if platform_role is not None:
        statements += [
            {"Sid": "PlatformOwnStack", "Effect": "Allow", "Principal": {"AWS": platform_role},
             "Action": OBJECT_ACTIONS, "Resource": [f"{arn}/{p}" for p in team_prefixes(project, platform_stack)]
             + [f"{arn}/{ROOT}/ledger/*"]},  # allocate: every team's credit transfers
            {"Sid": "PlatformReadAll", "Effect": "Allow", "Principal": {"AWS": platform_role},
             "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": [arn, f"{arn}/*"]},
        ]
    return {"Version": "2012-10-17", "Statement": statements}
