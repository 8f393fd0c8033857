"""The properties of one `vastai:Team` resource (a Vast team: an account of its own, with its own balance,
instances, roles and members): the contract between the provider, the pack and the platform program.

- `TeamInputs`: what the platform declares (`fleet.platform_declaration.TeamAccess`): the vastguard team, its
  name on Vast, the credit moved in from the platform owner's personal account when it is created, and, to
  adopt a team made in Vast's console, its id.
- `TeamOutputs`: the inputs plus what Vast reports: the team's account id, its owner, whether the platform holds
  a key inside it (the console's bootstrap key), and the members and roles Vast lists, so that a refresh shows a
  member added behind the platform's back and the pack can deny it (`vast-platform-undeclared-members`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from fleet.access_fields import Email, TeamName

TEAM_TYPE = "pulumi-python:dynamic/vastai:Team"

__all__ = ["OBSERVED_FIELDS", "TEAM_TYPE", "ObservedMember", "TeamInputs", "TeamOutputs"]


class TeamInputs(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    team: TeamName = Field(description="the vastguard team (its stack and policy file carry the same name)")
    vast_name: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        description="the team's name on Vast (unique across Vast)")
    initial_credit: Annotated[float, Field(ge=0, le=1_000_000)] = Field(
        default=0, description="$ moved from the platform owner's personal credit when the team is created; "
                               "later changes move nothing (topping up is the budget's job)")
    adopt_team_id: int | None = Field(default=None, description="an existing team's id: adopt it, create nothing")


class ObservedMember(BaseModel):
    """A member as Vast lists it (`GET /team/members/`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: int
    email: Email | None = None
    role: str | None = None


class TeamOutputs(TeamInputs):
    team_id: int = Field(description="the team's account id on Vast")
    owner_id: int | None = Field(default=None, description="the owner's user id (the platform's account)")
    bootstrapped: bool = Field(default=False, description="a key in the team's context is configured")
    members: list[ObservedMember] = Field(default_factory=list, description="as Vast listed them at the last read")
    roles: list[str] = Field(default_factory=list, description="every role name Vast lists, defaults included")


OBSERVED_FIELDS: tuple[str, ...] = tuple(f for f in TeamOutputs.model_fields if f not in TeamInputs.model_fields)
