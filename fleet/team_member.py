"""The properties of one `vastai:TeamMember` resource (a person in a Vast team, by e-mail, with one role): the
contract between the provider, the pack (`vast-platform-member-roles`, `vast-platform-max-owners`) and the
platform program.

Vast adds a member by invitation (`POST /team/invite/`, valid 4 hours); the person joins by the e-mail's link.
So a member is `invited` until Vast lists them, then `member`. An invitation that expired unanswered reads as
gone, and the next `up` invites again. Vast has no call to change a member's role: a new role replaces the
member (removed, invited again).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fleet.access_fields import Email, RoleName, TeamName

TEAM_MEMBER_TYPE = "pulumi-python:dynamic/vastai:TeamMember"
INVITATION_TTL = 4 * 3600.0
"""docs.vast.ai/guides/teams/managing-teams: "Team Invitations will expire after 4 hours"."""

MemberStatus = Literal["invited", "member"]

__all__ = ["INVITATION_TTL", "TEAM_MEMBER_TYPE", "MemberStatus", "TeamMemberInputs", "TeamMemberOutputs"]


class TeamMemberInputs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: TeamName
    team_id: int | None = Field(default=None, description="the team's account id (unknown until it exists)")
    email: Email
    role: RoleName


class TeamMemberOutputs(TeamMemberInputs):
    status: MemberStatus
    user_id: int | None = Field(default=None, description="Vast's user id, once the person joined")
    invited_at: float | None = Field(default=None, description="Vast's clock when the invitation was sent")
