"""The properties of one `vastai:TeamRole` resource (a custom role in a Vast team): the contract between the
provider, the pack (`vast-platform-role-ceiling`, `vast-platform-max-owners`) and the platform program.

`permissions` is the canonical wire form of the role's document (`fleet.access_fields`). A refresh reads the
role back from Vast into the *inputs* (the dynamic provider's `ReadResult.inputs`), so a role widened in the
console shows as a diff against the declaration and the next `up` narrows it again.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fleet.access_fields import PermissionDocument, RoleName, TeamName

TEAM_ROLE_TYPE = "pulumi-python:dynamic/vastai:TeamRole"

__all__ = ["TEAM_ROLE_TYPE", "TeamRoleInputs", "TeamRoleOutputs"]


class TeamRoleInputs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: TeamName
    team_id: int | None = Field(default=None, description="the team's account id (unknown until it exists)")
    name: RoleName
    permissions: PermissionDocument


class TeamRoleOutputs(TeamRoleInputs):
    role_id: int = Field(description="Vast's id of the role")
