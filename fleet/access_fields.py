"""Field types the access resources' contracts share (`fleet.team`, `fleet.team_role`, `fleet.team_member`,
`fleet.api_key`): the team name, a permission document in its canonical wire form, an e-mail address, an IP
allow-list.

A permission document is kept as its *canonical* wire form (`PermissionSet.parse(...).to_wire()`): the
declaration, the provider's inputs, what a refresh reads back from Vast and what the pack judges then compare
equal exactly when they grant the same, so a document written in another key order is no diff and a role
widened in Vast's console is one.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from fleet.declaration import TEAM_NAME
from fleet.permissions import InvalidPermissions, KeyParams, PermissionSet

__all__ = [
    "DEFAULT_ROLES",
    "EMAIL",
    "OWNER_ROLE",
    "Email",
    "IpAllowList",
    "PermissionDocument",
    "RoleName",
    "TeamName",
    "canonical_permissions",
    "recipient_env",
]

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
"""What Vast's invitations accept (and the emulator checks): one @, a dot in the domain, no spaces."""
OWNER_ROLE = "owner"
DEFAULT_ROLES = ("owner", "manager", "member")
"""Every Vast team has these three (docs.vast.ai, teams-roles); only custom roles are declared."""

KeyKind = Literal["preview", "deploy"]
KEY_KINDS: tuple[KeyKind, ...] = ("preview", "deploy")
"""A team's two keys: `preview` (read-only, for pull requests) and `deploy` (adds instance write, for main)."""


def recipient_env(team: str, kind: KeyKind) -> str:
    """The environment variable holding the secret of the job that receives `team`'s `kind` key, e.g.
    `VASTGUARD_DEPLOY_SECRET_ML_RESEARCH` (upper case, anything but letters and digits as `_`); see
    fleet/envelope.py."""
    return f"VASTGUARD_{kind.upper()}_SECRET_" + re.sub(r"[^A-Z0-9]", "_", team.upper())


def canonical_permissions(raw: Any, where: str = "permissions") -> dict[str, Any]:
    """The document's canonical wire form; InvalidPermissions (naming the field) when Vast would refuse it."""
    return PermissionSet.parse(raw, where=where).to_wire()


def _document(value: Any) -> Any:
    try:
        return canonical_permissions(value)
    except InvalidPermissions as err:
        raise ValueError(str(err)) from None


def _email(value: str) -> str:
    if not EMAIL.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not an e-mail address (name@example.com)")
    return value.strip().lower()


def _allow_list(value: Any) -> Any:
    try:
        return list(KeyParams.parse({"ip_whitelist": value}, where="ip_allowlist").ip_whitelist)
    except InvalidPermissions as err:
        raise ValueError(str(err)) from None


TeamName = Annotated[str, Field(pattern=TEAM_NAME.pattern)]
RoleName = Annotated[str, Field(min_length=2, max_length=50)]
PermissionDocument = Annotated[dict[str, Any], BeforeValidator(_document)]
Email = Annotated[str, AfterValidator(_email)]
IpAllowList = Annotated[list[str], BeforeValidator(_allow_list)]
