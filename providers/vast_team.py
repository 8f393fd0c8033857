"""`vastai:Team`: a Vast team (an account of its own) as a Pulumi resource. Contract: `fleet.team`.

- `create`: the platform owner's personal key creates the team (`POST /team/`, moving `initial_credit` of
  personal credit in), or, with `adopt_team_id`, adopts one made in the console (checked against the team's key
  when there is one). Vast answers a creation only once: an interrupted one is not repeated (the client says
  so), and `adopt_team_id` takes over a team that was made.
- `read` (refresh): with the team's key, what Vast lists: members (so a member added behind the platform's
  back shows, and the pack denies it) and roles. Without one, nothing can be read inside the team.
- `diff`: a new name on Vast or another adopted id replaces the team; `initial_credit` moves money only at
  creation, so a change is no diff.
- `delete`: `DELETE /team/` with the team's key: Vast refunds what is left to the owner. Refused while the team
  has instances (its stack is destroyed first: `vastguard team remove`); already gone is success.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pulumi
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from fleet.team import OBSERVED_FIELDS, ObservedMember, TeamInputs, TeamOutputs
from providers.access import AccessError, AccessProvider, checked_inputs, validate
from vastclient import ApiError, NotFoundError, VastClient

REPLACE_FIELDS = ("team", "vast_name", "adopt_team_id")


class VastTeamProvider(AccessProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs, failures = validate(TeamInputs, news)
        return CheckResult(checked_inputs(inputs, news) if inputs else news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_FIELDS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, stables=["team"], delete_before_replace=False)

    def _observed(self, inputs: TeamInputs, team_id: int, owner_id: int | None) -> dict[str, Any]:
        members: list[ObservedMember] = []
        roles: list[str] = []
        if self.has_team_key(inputs.team):
            client: VastClient = self.team_client(inputs.team, team_id)
            members = [ObservedMember(user_id=m.id, email=m.email, role=m.roles[0] if m.roles else None)
                       for m in client.list_members()]
            roles = sorted({"owner", *(r.name for r in client.list_roles())})
        outputs = TeamOutputs(**inputs.model_dump(), team_id=team_id, owner_id=owner_id,
                              bootstrapped=self.has_team_key(inputs.team), members=members, roles=roles)
        return outputs.model_dump(mode="json")

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = TeamInputs.model_validate({k: v for k, v in props.items() if k in TeamInputs.model_fields})
        then = "once that is fixed, run `pulumi up` again"
        with self.reported(inputs.team, "create the team", then, uses="personal"):
            if inputs.adopt_team_id is not None:
                team_id, owner_id = inputs.adopt_team_id, None
            else:
                personal = self.personal()
                team_id = personal.create_team(inputs.vast_name,
                                               transfer_credit=Decimal(str(inputs.initial_credit)))
                owner_id = personal.current_user().id
        with self.reported(inputs.team, "read the new team", then):
            return CreateResult(id_=str(team_id), outs=self._observed(inputs, team_id, owner_id))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = TeamInputs.model_validate({k: v for k, v in props.items() if k in TeamInputs.model_fields})
        with self.reported(inputs.team, f"read team {id_}", "the state is unchanged; refresh again once fixed"):
            return ReadResult(id_=id_, outs=self._observed(inputs, int(id_), props.get("owner_id")))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = TeamInputs.model_validate({k: v for k, v in news.items() if k in TeamInputs.model_fields})
        with self.reported(inputs.team, f"read team {id_}", "run `pulumi up` again once that is fixed"):
            return UpdateResult(outs=self._observed(inputs, int(id_), olds.get("owner_id")))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        team = str(props.get("team") or id_)
        then = "the team is still in the state (and keeps its credit); run the same command again once fixed"
        with self.reported(team, f"delete team {id_}", then):
            client = self.team_client(team, int(id_))
            try:
                client.destroy_team()
            except NotFoundError:
                return  # "User is not a team account": already gone
            except ApiError as err:
                if "instances" in str(err).lower():
                    raise AccessError(
                        f"{team}: Vast refuses to delete a team that still has instances: destroy the team's "
                        f"stack first (`vastguard team remove {team}` does both, in that order)") from None
                raise


PROVIDER = VastTeamProvider()


class Team(Resource, module="vastai", name="Team"):
    """A Vast team, declared by the platform stack."""

    team_id: pulumi.Output[int]
    owner_id: pulumi.Output[int]
    bootstrapped: pulumi.Output[bool]
    members: pulumi.Output[list[dict[str, Any]]]
    roles: pulumi.Output[list[str]]

    def __init__(self, name: str, inputs: TeamInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {**inputs.model_dump(mode="json"), **dict.fromkeys(OBSERVED_FIELDS)}
        super().__init__(PROVIDER, name, props, opts)
