"""The platform rules' reader of Pulumi properties: each access resource (`vastai:Team`, `TeamRole`, `TeamMember`,
`ApiKey`) as a typed view, every value read through its `fleet` contract's field type, unknowns (at preview) as
`UNKNOWN` (`policies.instances.plain`), a value the contract would refuse as unknown too (never trusted).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from fleet.api_key import API_KEY_TYPE, ApiKeyOutputs
from fleet.permissions import InvalidPermissions, PermissionSet
from fleet.team import TEAM_TYPE, ObservedMember, TeamOutputs
from fleet.team_member import TEAM_MEMBER_TYPE, TeamMemberOutputs
from fleet.team_role import TEAM_ROLE_TYPE, TeamRoleOutputs
from policies.instances import ACCESS_TYPES, UNKNOWN, Known, Unknown, current_stack, plain, stack_of

__all__ = ["ACCESS_TYPES", "AccessView", "KeyView", "MemberView", "RoleView", "TeamView", "is_access_type"]


def is_access_type(resource_type: str) -> bool:
    return resource_type in ACCESS_TYPES


@functools.cache
def _adapter(model: type[BaseModel], field: str) -> TypeAdapter[Any]:
    info = model.model_fields[field]
    annotation = Any if info.annotation is None else info.annotation
    if info.metadata:
        return TypeAdapter(Annotated[(annotation, *info.metadata)])  # type: ignore[arg-type]
    return TypeAdapter(annotation)


def _read(model: type[BaseModel], values: Mapping[str, Any], field: str) -> Any:
    if field not in values or values[field] is None:
        return None
    value = values[field]
    if value is UNKNOWN:
        return UNKNOWN
    try:
        return _adapter(model, field).validate_python(value)
    except ValidationError:
        return UNKNOWN


def _document(value: Any) -> PermissionSet | Unknown | None:
    if value is None or isinstance(value, Unknown):
        return value
    try:
        return PermissionSet.parse(value)
    except InvalidPermissions:
        return UNKNOWN


def _values(props: Any) -> Mapping[str, Any]:
    values = plain(props)
    return values if isinstance(values, Mapping) else {}


@dataclass(frozen=True)
class AccessView:
    """What every view has: the resource's name, URN, stack and team."""

    name: str
    urn: str
    stack: str
    team: Known[str] | None


def _base(name: str, urn: str) -> dict[str, str]:
    return {"name": name, "urn": urn, "stack": stack_of(urn) or current_stack(())}


@dataclass(frozen=True)
class KeyView(AccessView):
    kind: Known[str] | None
    permissions: PermissionSet | Unknown | None
    ip_allowlist: Known[list[str]] | None
    rotation: Known[str] | None
    max_age_days: Known[int] | None
    key_id: Known[int] | None
    created_at: Known[float] | None

    @classmethod
    def of(cls, *, resource_type: str, name: str, urn: str, props: Any) -> KeyView | None:
        if resource_type != API_KEY_TYPE:
            return None
        values = _values(props)

        def read(field: str) -> Any:
            return _read(ApiKeyOutputs, values, field)

        return cls(**_base(name, urn), team=read("team"), kind=read("kind"),
                   permissions=_document(read("permissions")), ip_allowlist=read("ip_allowlist"),
                   rotation=read("rotation"), max_age_days=read("max_age_days"), key_id=read("key_id"),
                   created_at=read("created_at"))


@dataclass(frozen=True)
class RoleView(AccessView):
    role: Known[str] | None
    permissions: PermissionSet | Unknown | None

    @classmethod
    def of(cls, *, resource_type: str, name: str, urn: str, props: Any) -> RoleView | None:
        if resource_type != TEAM_ROLE_TYPE:
            return None
        values = _values(props)
        return cls(**_base(name, urn), team=_read(TeamRoleOutputs, values, "team"),
                   role=_read(TeamRoleOutputs, values, "name"),
                   permissions=_document(_read(TeamRoleOutputs, values, "permissions")))


@dataclass(frozen=True)
class MemberView(AccessView):
    email: Known[str] | None
    role: Known[str] | None

    @classmethod
    def of(cls, *, resource_type: str, name: str, urn: str, props: Any) -> MemberView | None:
        if resource_type != TEAM_MEMBER_TYPE:
            return None
        values = _values(props)
        return cls(**_base(name, urn), team=_read(TeamMemberOutputs, values, "team"),
                   email=_read(TeamMemberOutputs, values, "email"), role=_read(TeamMemberOutputs, values, "role"))


@dataclass(frozen=True)
class TeamView(AccessView):
    owner_id: Known[int] | None
    members: Known[list[ObservedMember]] | None

    @classmethod
    def of(cls, *, resource_type: str, name: str, urn: str, props: Any) -> TeamView | None:
        if resource_type != TEAM_TYPE:
            return None
        values = _values(props)
        return cls(**_base(name, urn), team=_read(TeamOutputs, values, "team"),
                   owner_id=_read(TeamOutputs, values, "owner_id"), members=_read(TeamOutputs, values, "members"))
