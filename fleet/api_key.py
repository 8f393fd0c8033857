"""The properties of one `vastai:ApiKey` resource (a scoped key in a Vast team, given to one team's preview or
deploy job): the contract between the provider, the pack (`vast-platform-key-permissions`,
`vast-platform-key-ip-allowlist`, `vast-platform-key-max-age`), the platform program and key delivery.

- `ApiKeyInputs`: team, kind, the key's name on Vast, its permission document (canonical wire form), its IP
  allow-list, its rotation stamp and maximum age, and the recipient of its envelope (`fleet.envelope`):
  `recipient` names the environment variable holding the recipient's secret, `sealed_for` is the provider's
  verifier of that secret (added by `check`, like the instance's quote).
- `ApiKeyOutputs`: the inputs plus Vast's key id, the key itself (a Pulumi secret: the resource lists it in
  `additional_secret_outputs`, so state holds it encrypted only), the envelope (ciphertext: a plain output) and
  Vast's creation time of the key.

What replaces a key (create-before-delete: the new key exists, and its envelope is exported, before the old one
is revoked): its team, kind, name, permissions, allow-list or rotation. A new recipient secret reseals in place.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from fleet.access_fields import IpAllowList, KeyKind, PermissionDocument, TeamName

API_KEY_TYPE = "pulumi-python:dynamic/vastai:ApiKey"
SECRET_OUTPUTS = ("key",)

REPLACE_FIELDS = ("team", "team_id", "kind", "name", "permissions", "ip_allowlist", "rotation")
IN_PLACE_FIELDS = ("recipient", "sealed_for", "max_age_days")

__all__ = ["API_KEY_TYPE", "IN_PLACE_FIELDS", "REPLACE_FIELDS", "SECRET_OUTPUTS", "ApiKeyInputs", "ApiKeyOutputs"]


class ApiKeyInputs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: TeamName
    team_id: int | None = Field(default=None, description="the team's account id (unknown until it exists)")
    kind: KeyKind
    name: Annotated[str, Field(min_length=1, max_length=255)]
    permissions: PermissionDocument
    ip_allowlist: IpAllowList = Field(default_factory=list, description="addresses or networks; empty: any")
    rotation: Annotated[str, Field(min_length=1, max_length=40)] = Field(
        description="the declaration's `rotated` date (or `initial`): a new one replaces the key")
    max_age_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    recipient: Annotated[str, Field(pattern=r"^VASTGUARD_[A-Z]+_SECRET_[A-Z0-9_]+$")]
    sealed_for: str | None = Field(default=None, description="verifier of the recipient secret (set by check)")


class ApiKeyOutputs(ApiKeyInputs):
    key_id: int
    key: SecretStr = Field(repr=False, description="the key (a Pulumi secret in state)")
    envelope: dict[str, Any] = Field(description="`fleet.envelope.Envelope`: the key sealed for `recipient`")
    created_at: float | None = Field(default=None, description="Vast's clock when the key was created")
