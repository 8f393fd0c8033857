"""Request bodies of the access-control calls, one model each, serialised as the official CLI 1.9.1 sends them
(`vastai/api/teams.py`, `keys.py`): the same keys, and none the CLI leaves out.

Each validates before anything is sent, so a bad name, amount or permission document is an
`InvalidRequestError` naming the field, not a round trip to Vast.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleet.permissions import KeyParams, PermissionSet

__all__ = ["CreateApiKeyBody", "CreateTeamBody", "RoleBody", "TransferCreditBody", "UpdateRoleBody"]

CENT = Decimal("0.01")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        raise NotImplementedError


class CreateTeamBody(_Body):
    """`POST /api/v0/team/`."""

    team_name: str = Field(min_length=1, max_length=128)
    transfer_credit: Decimal = Field(default=Decimal(0), ge=0, allow_inf_nan=False)

    def wire(self) -> dict[str, Any]:
        return {"team_name": self.team_name, "transfer_credit": float(self.transfer_credit)}


class RoleBody(_Body):
    """`POST /api/v0/team/roles/`. Vast requires 2 to 50 characters for a role's name."""

    name: str = Field(min_length=2, max_length=50)
    permissions: PermissionSet

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "permissions": self.permissions.to_wire()}


class UpdateRoleBody(_Body):
    """`PUT /api/v0/team/roles/{id}/`: only what changes (the CLI drops what it was not given)."""

    name: str | None = Field(default=None, min_length=2, max_length=50)
    permissions: PermissionSet | None = None

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.name is not None:
            body["name"] = self.name
        if self.permissions is not None:
            body["permissions"] = self.permissions.to_wire()
        return body


class CreateApiKeyBody(_Body):
    """`POST /api/v0/auth/apikeys/`. No `permissions`: the new key gets what the creating key holds."""

    name: str = Field(min_length=1, max_length=255)
    permissions: PermissionSet | None = None
    key_params: KeyParams | None = None

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name}
        if self.permissions is not None:
            body["permissions"] = self.permissions.to_wire()
        if self.key_params is not None:
            body["key_params"] = self.key_params.to_wire()
        return body


class TransferCreditBody(_Body):
    """`PUT /api/v0/commands/transfer_credit/`: `recipient` an e-mail or an account id; whole cents only."""

    recipient: str = Field(min_length=1)
    amount: Decimal = Field(gt=0, allow_inf_nan=False)

    @field_validator("amount")
    @classmethod
    def _cents(cls, value: Decimal) -> Decimal:
        if value != value.quantize(CENT):
            raise ValueError("Vast moves credit in whole cents: at most 2 decimal places")
        return value

    def wire(self) -> dict[str, Any]:
        return {"sender": "me", "recipient": self.recipient, "amount": float(self.amount)}
