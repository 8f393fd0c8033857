"""`vastai:TeamMember`: a person in a Vast team, by e-mail, with one role. Contract: `fleet.team_member`.

- `create`: someone with that address already in the team is adopted; otherwise an invitation
  (`POST /team/invite/?email=&role=`), and the member is `invited` until they follow the e-mail's link.
- `read` (refresh): Vast's member list. A member listed is `member` (with the role Vast lists, as the inputs
  too, so a role changed in the console is a diff); one no longer listed was removed and is gone (the next
  `up` invites again); an invitation unanswered after Vast's 4 hours has expired and is gone too.
- `diff`: Vast cannot change a member's role, so a new role (or address, or team) replaces the member.
- `delete`: `DELETE /team/members/{id}/` (Vast revokes every key they hold in the team); already gone is
  success. A pending invitation cannot be withdrawn through Vast's API: it lapses after 4 hours.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from fleet.team_member import INVITATION_TTL, TeamMemberInputs, TeamMemberOutputs
from providers.access import AccessProvider, checked_inputs, validate
from vastclient import Member, NotFoundError, VastClient

REPLACE_FIELDS = ("team", "team_id", "email", "role")


def _inputs(props: dict[str, Any]) -> TeamMemberInputs:
    return TeamMemberInputs.model_validate({k: v for k, v in props.items() if k in TeamMemberInputs.model_fields})


def _listed(client: VastClient, email: str) -> Member | None:
    return next((m for m in client.list_members() if (m.email or "").lower() == email.lower()), None)


class VastTeamMemberProvider(AccessProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs, failures = validate(TeamMemberInputs, news)
        return CheckResult(checked_inputs(inputs, news) if inputs else news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_FIELDS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, stables=["team"], delete_before_replace=True)

    @staticmethod
    def _member(inputs: TeamMemberInputs, member: Member) -> dict[str, Any]:
        role = member.roles[0] if member.roles else inputs.role
        return TeamMemberOutputs(**{**inputs.model_dump(), "role": role}, status="member",
                                 user_id=member.id).model_dump(mode="json")

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = _inputs(props)
        with self.reported(inputs.team, f"invite {inputs.email}", "run `pulumi up` again once that is fixed"):
            client = self.team_client(inputs.team, inputs.team_id)
            member = _listed(client, inputs.email)
            if member is not None:
                return CreateResult(id_=f"{inputs.team_id}/{inputs.email}", outs=self._member(inputs, member))
            client.invite_member(inputs.email, inputs.role)
            outs = TeamMemberOutputs(**inputs.model_dump(), status="invited", invited_at=client.last_server_time)
            return CreateResult(id_=f"{inputs.team_id}/{inputs.email}", outs=outs.model_dump(mode="json"))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = _inputs(props)
        with self.reported(inputs.team, f"read member {inputs.email}", "the state is unchanged; refresh again "
                           "once that is fixed"):
            client = self.team_client(inputs.team, inputs.team_id)
            member = _listed(client, inputs.email)
            if member is not None:
                outs = self._member(inputs, member)
                return ReadResult(id_=id_, outs=outs,
                                  inputs={k: v for k, v in outs.items() if k in TeamMemberInputs.model_fields})
            invited_at = props.get("invited_at")
            now = client.last_server_time
            if props.get("status") == "invited" and isinstance(invited_at, int | float) and (
                    now is None or now < invited_at + INVITATION_TTL):
                return ReadResult(id_=id_, outs=props)
            return ReadResult(id_="", outs={})  # removed, or the invitation lapsed: `up` invites again

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**olds, **_inputs(news).model_dump(mode="json")})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        inputs = _inputs(props)
        with self.reported(inputs.team, f"remove member {inputs.email}", "they are still in the state; run the "
                           "same command again once that is fixed"):
            client = self.team_client(inputs.team, inputs.team_id)
            member = _listed(client, inputs.email)
            if member is None:
                return  # not (or no longer) in the team; an unanswered invitation lapses by itself
            try:
                client.remove_member(member.id)
            except NotFoundError:
                return


PROVIDER = VastTeamMemberProvider()


class TeamMember(Resource, module="vastai", name="TeamMember"):
    """A person in a Vast team, declared by the platform stack."""

    status: pulumi.Output[str]
    user_id: pulumi.Output[int]

    def __init__(self, resource_name: str, inputs: TeamMemberInputs, *, team_id: pulumi.Input[int],
                 role: pulumi.Input[str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {**inputs.model_dump(mode="json"), "team_id": team_id,
                                 **({"role": role} if role is not None else {}),
                                 "status": None, "user_id": None, "invited_at": None}
        super().__init__(PROVIDER, resource_name, props, opts)
