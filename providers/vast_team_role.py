"""`vastai:TeamRole`: a custom role in a Vast team. Contract: `fleet.team_role`.

- `create`: a role of that name already in the team (an interrupted create, or one made in the console) is
  adopted and given the declared permissions; otherwise `POST /team/roles/`.
- `read` (refresh): the role as Vast lists it (`roles-full`, found by id), returned as the resource's *inputs*
  too, so a role widened in the console is a diff against the declaration, which `up` narrows again. A role
  missing from the listing is gone (Vast's own 200 answer, not a 404 a gateway could send).
- `update`: name and permissions in place (`PUT /team/roles/{id}/`). `delete`: by its current name; already
  gone is success. Vast refuses to remove a role someone holds: the members go first (they depend on it).
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from fleet.access_fields import canonical_permissions
from fleet.team_role import TeamRoleInputs, TeamRoleOutputs
from providers.access import AccessProvider, checked_inputs, validate
from vastclient import NotFoundError, Role, VastClient

REPLACE_FIELDS = ("team", "team_id")
IN_PLACE_FIELDS = ("name", "permissions")


def _inputs(props: dict[str, Any]) -> TeamRoleInputs:
    return TeamRoleInputs.model_validate({k: v for k, v in props.items() if k in TeamRoleInputs.model_fields})


def _find(client: VastClient, *, role_id: int | None = None, name: str | None = None) -> Role | None:
    for role in client.list_roles():
        if (role_id is not None and role.id == role_id) or (role_id is None and role.name == name):
            return role
    return None


class VastTeamRoleProvider(AccessProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs, failures = validate(TeamRoleInputs, news)
        return CheckResult(checked_inputs(inputs, news) if inputs else news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_FIELDS if olds.get(k) != news.get(k)]
        changes = replaces + [k for k in IN_PLACE_FIELDS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changes), replaces=replaces, stables=["team"], delete_before_replace=False)

    @staticmethod
    def _outputs(inputs: TeamRoleInputs, role: Role) -> dict[str, Any]:
        return TeamRoleOutputs(**{**inputs.model_dump(), "name": role.name,
                                  "permissions": role.permissions.to_wire()}, role_id=role.id).model_dump(mode="json")

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = _inputs(props)
        with self.reported(inputs.team, f"create role {inputs.name}", "run `pulumi up` again once that is fixed"):
            client = self.team_client(inputs.team, inputs.team_id)
            role = _find(client, name=inputs.name)
            if role is None:
                role = client.create_role(inputs.name, inputs.permissions)
            elif canonical_permissions(role.permissions.to_wire()) != inputs.permissions:
                client.update_role(role.id, permissions=inputs.permissions)
                role = _find(client, role_id=role.id) or role
            return CreateResult(id_=str(role.id), outs=self._outputs(inputs, role))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = _inputs(props)
        with self.reported(inputs.team, f"read role {inputs.name}", "the state is unchanged; refresh again once fixed"):
            role = _find(self.team_client(inputs.team, inputs.team_id), role_id=int(id_))
            if role is None:
                return ReadResult(id_="", outs={})
            outs = self._outputs(inputs, role)
            return ReadResult(id_=id_, outs=outs,
                              inputs={k: v for k, v in outs.items() if k in TeamRoleInputs.model_fields})

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = _inputs(news)
        with self.reported(inputs.team, f"change role {inputs.name}", "run `pulumi up` again once that is fixed"):
            client = self.team_client(inputs.team, inputs.team_id)
            client.update_role(int(id_), name=inputs.name if inputs.name != olds.get("name") else None,
                               permissions=inputs.permissions)
            role = _find(client, role_id=int(id_))
            if role is None:
                raise NotFoundError(f"role {inputs.name} vanished during the update; run `pulumi refresh`")
            return UpdateResult(outs=self._outputs(inputs, role))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        inputs = _inputs(props)
        with self.reported(inputs.team, f"delete role {inputs.name}", "it is still in the state; run the same "
                           "command again once that is fixed"):
            client = self.team_client(inputs.team, inputs.team_id)
            role = _find(client, role_id=int(id_))
            if role is None:
                return
            try:
                client.remove_role(role.name)
            except NotFoundError:
                return


PROVIDER = VastTeamRoleProvider()


class TeamRole(Resource, module="vastai", name="TeamRole"):
    """A custom role in a Vast team, declared by the platform stack."""

    role_id: pulumi.Output[int]
    name: pulumi.Output[str]

    def __init__(self, resource_name: str, inputs: TeamRoleInputs, *, team_id: pulumi.Input[int],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {**inputs.model_dump(mode="json"), "team_id": team_id, "role_id": None}
        super().__init__(PROVIDER, resource_name, props, opts)
