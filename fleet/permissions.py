"""The permission document of a Vast.ai API key or team role, and a key's `key_params`: the one contract the
client (request bodies), the emulator (what it enforces), the provider and the policy pack share.

The wire form (docs.vast.ai/api-reference/permissions, the CLI's `--permission_file`):

    {"api": {"misc": {}, "user_read": {}, "instance_read": {},
             "instance_write": {"api.instance.destroy": {"constraints": {"id": {"eq": 1227}}}}}}

- `api` holds categories; a category with `{}` grants every endpoint in it. A category that names endpoints
  grants only those (docs: "the only API under team_read that the user would have access to would be viewing
  the list of team members" for `{"team_read": {"api.team.members": {}}}`).
- An endpoint entry may carry `constraints`: per request parameter, operators `eq`, `lte`, `gte` (the only
  three Vast supports); several operators on one parameter all hold (`{"gte": 1, "lte": 100}` is a range).
- Wildcards: a constraint value `"{name}"` is a placeholder, filled from the key's `key_params` when the key is
  created ("wildcards in params ... useful when generating many keys that perform similar operations"; the
  placeholder spelling is vastguard's, Vast documents none). Roles have no `key_params`, so no placeholders.

Pure: parse and validate (every error names the field, e.g. `permissions.api.instance_red`), serialise, fill
placeholders, and `exceeds` (what one document grants beyond another: a key may not be created with more than
its creator holds). Which endpoint needs which category, and evaluating constraints against a request, is the
enforcer's (the emulator's `access` module; Vast's servers).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CATEGORIES",
    "CONSTRAINT_OPS",
    "Category",
    "CategoryGrant",
    "Constraint",
    "EndpointRule",
    "InvalidPermissions",
    "KeyParams",
    "PermissionSet",
    "Scalar",
]

Category = Literal[
    "instance_read", "instance_write", "user_read", "user_write", "billing_read", "billing_write",
    "machine_read", "machine_write", "misc", "team_read", "team_write",
]
CATEGORIES: tuple[str, ...] = get_args(Category)
"""docs.vast.ai/api-reference/permissions, "Permission Categories" (the same eleven in the CLI and SDK pages)."""

CONSTRAINT_OPS = ("eq", "lte", "gte")
Scalar = int | float | str | bool

ENDPOINT_NAME = re.compile(r"api(?:\.[a-z][a-z0-9_]*)+")
"""Vast names endpoints like `api.instance.show`, `api.instance.request_logs`, `api.team.members`."""
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_ENTRIES = 500  # endpoints or constraints in one document: far beyond any real key, short of a denial of service


class InvalidPermissions(ValueError):
    """A permission document or `key_params` Vast would refuse; `field` is where (`permissions.api.misc`)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _object(value: Any, where: str, example: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidPermissions(where, f"must be a JSON object such as {example}; got {_shown(value)}")
    if len(value) > MAX_ENTRIES:
        raise InvalidPermissions(where, f"has {len(value)} entries; at most {MAX_ENTRIES}")
    return value


def _placeholder(value: Any) -> str | None:
    if isinstance(value, str):
        found = PLACEHOLDER.fullmatch(value.strip())
        if found:
            return found.group(1)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


class Constraint(BaseModel):
    """Allowed values of one request parameter: `eq` a value, and/or a range `gte`..`lte` (numbers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eq: Scalar | None = None
    lte: float | int | str | None = None  # a str only while it is a placeholder
    gte: float | int | str | None = None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Constraint:
        ops = _object(raw, where, '{"eq": 1227} or {"gte": 1, "lte": 100}')
        if not ops:
            raise InvalidPermissions(where, "needs an operator: eq, lte or gte")
        for op, value in ops.items():
            here = f"{where}.{op}"
            if op not in CONSTRAINT_OPS:
                raise InvalidPermissions(here, f"unknown operator {op!r}; Vast's constraints use eq, lte or gte")
            if _placeholder(value) is not None:
                continue
            if op == "eq":
                if not (isinstance(value, str | bool) or _is_number(value)):
                    raise InvalidPermissions(here, f"must be a number, text or true/false; got {_shown(value)}")
            elif not _is_number(value):
                raise InvalidPermissions(here, f"compares numbers; got {_shown(value)}")
        lte, gte = _number(ops.get("lte")), _number(ops.get("gte"))
        if lte is not None and gte is not None and lte < gte:
            raise InvalidPermissions(where, f"gte {ops['gte']} is above lte {ops['lte']}: no value satisfies it")
        return cls(**ops)

    def to_wire(self) -> dict[str, Scalar]:
        return {op: value for op, value in (("eq", self.eq), ("lte", self.lte), ("gte", self.gte))
                if value is not None}

    def placeholders(self) -> set[str]:
        return {name for name in map(_placeholder, (self.eq, self.lte, self.gte)) if name is not None}

    def resolve(self, values: Mapping[str, Scalar], where: str) -> Constraint:
        filled: dict[str, Scalar] = {}
        for op, value in self.to_wire().items():
            name = _placeholder(value)
            if name is None:
                filled[op] = value
                continue
            if name not in values:
                raise InvalidPermissions(f"{where}.{op}", f"placeholder {{{name}}} has no value: add "
                                         f'"{name}" to key_params')
            filled[op] = values[name]
        return Constraint.parse(filled, where)

    def within(self, bound: Constraint) -> bool:
        """Whether every value this admits, `bound` admits too."""
        if bound.eq is not None and self.eq != bound.eq:
            return False
        low, high = _number(bound.gte), _number(bound.lte)
        if self.eq is not None:
            value = _number(self.eq)
            return (low is None or (value is not None and value >= low)) and \
                   (high is None or (value is not None and value <= high))
        mine_low, mine_high = _number(self.gte), _number(self.lte)
        return (high is None or (mine_high is not None and mine_high <= high)) and \
               (low is None or (mine_low is not None and mine_low >= low))


class EndpointRule(BaseModel):
    """One endpoint a category is narrowed to, and the constraints on its request parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    constraints: dict[str, Constraint] = Field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, where: str) -> EndpointRule:
        entry = _object(raw, where, '{} or {"constraints": {"id": {"eq": 1227}}}')
        for key in entry:
            if key != "constraints":
                raise InvalidPermissions(f"{where}.{key}", 'unknown key; an endpoint entry holds only "constraints"')
        raw_constraints = _object(entry.get("constraints", {}), f"{where}.constraints", '{"id": {"eq": 1227}}')
        constraints = {}
        for param, spec in raw_constraints.items():
            if not PARAM_NAME.fullmatch(param):
                raise InvalidPermissions(f"{where}.constraints.{param}", "is not a parameter name (letters, digits, _)")
            constraints[param] = Constraint.parse(spec, f"{where}.constraints.{param}")
        return cls(constraints=constraints)

    def to_wire(self) -> dict[str, Any]:
        return {"constraints": {p: c.to_wire() for p, c in self.constraints.items()}} if self.constraints else {}


class CategoryGrant(BaseModel):
    """A category: every endpoint in it (`endpoints` empty, `{}` on the wire), or only the ones named."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoints: dict[str, EndpointRule] = Field(default_factory=dict)

    @property
    def whole(self) -> bool:
        return not self.endpoints


class PermissionSet(BaseModel):
    """A parsed permission document. `grants` maps each granted category to what of it is granted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grants: dict[Category, CategoryGrant] = Field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, *, where: str = "permissions") -> PermissionSet:
        """From the wire form (a dict, or its JSON text as the CLI's file holds it)."""
        if isinstance(raw, str | bytes):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise InvalidPermissions(where, f"is not valid JSON ({exc})") from None
        doc = _object(raw, where, '{"api": {"instance_read": {}}}')
        for key in doc:
            if key != "api":
                raise InvalidPermissions(f"{where}.{key}", 'unknown key; the document is {"api": {<category>: ...}}')
        if "api" not in doc:
            raise InvalidPermissions(where, 'needs "api", e.g. {"api": {"instance_read": {}}}')
        api = _object(doc["api"], f"{where}.api", '{"instance_read": {}}')
        grants: dict[Category, CategoryGrant] = {}
        for category, entries in api.items():
            here = f"{where}.api.{category}"
            if category not in CATEGORIES:
                raise InvalidPermissions(here, f"unknown category; Vast's categories are {', '.join(CATEGORIES)}")
            endpoints = {}
            named = _object(entries, here, '{} (the whole category) or {"api.instance.show": {}}')
            for endpoint, rule in named.items():
                if not ENDPOINT_NAME.fullmatch(endpoint):
                    raise InvalidPermissions(f"{here}.{endpoint}", "is not an endpoint name such as api.instance.show")
                endpoints[endpoint] = EndpointRule.parse(rule, f"{here}.{endpoint}")
            grants[category] = CategoryGrant(endpoints=endpoints)  # type: ignore[index]
        return cls(grants=grants)

    @classmethod
    def of(cls, *categories: Category) -> PermissionSet:
        """Whole categories, e.g. `PermissionSet.of("instance_read", "misc", "user_read")`."""
        return cls(grants={c: CategoryGrant() for c in categories})

    @classmethod
    def full(cls) -> PermissionSet:
        return cls.of(*get_args(Category))

    def to_wire(self) -> dict[str, Any]:
        return {"api": {c: {e: r.to_wire() for e, r in g.endpoints.items()} for c, g in self.grants.items()}}

    def placeholders(self) -> set[str]:
        return {name for g in self.grants.values() for r in g.endpoints.values() for c in r.constraints.values()
                for name in c.placeholders()}

    def resolve(self, values: Mapping[str, Scalar], *, where: str = "permissions") -> PermissionSet:
        """The document with every `{name}` placeholder replaced by `values[name]`."""
        if not self.placeholders():
            return self
        grants = {
            category: CategoryGrant(endpoints={
                endpoint: EndpointRule(constraints={
                    param: c.resolve(values, f"{where}.api.{category}.{endpoint}.constraints.{param}")
                    for param, c in rule.constraints.items()})
                for endpoint, rule in grant.endpoints.items()})
            for category, grant in self.grants.items()}
        return PermissionSet(grants=grants)

    def exceeds(self, bound: PermissionSet) -> list[str]:
        """Where this document grants what `bound` does not (empty: it is within `bound`)."""
        beyond: list[str] = []
        for category, grant in self.grants.items():
            limit = bound.grants.get(category)
            if limit is None:
                beyond.append(f"api.{category}")
            elif limit.whole:
                continue
            elif grant.whole:
                beyond.append(f"api.{category} (all of it; the bound grants only "
                              f"{', '.join(sorted(limit.endpoints))})")
            else:
                for endpoint, rule in grant.endpoints.items():
                    allowed = limit.endpoints.get(endpoint)
                    if allowed is None:
                        beyond.append(f"api.{category}.{endpoint}")
                        continue
                    for param, constraint in allowed.constraints.items():
                        mine = rule.constraints.get(param)
                        if mine is None or not mine.within(constraint):
                            beyond.append(f"api.{category}.{endpoint}.constraints.{param}")
        return beyond


class KeyParams(BaseModel):
    """`key_params` of a new key: `ip_whitelist` (addresses or networks the key may be used from; empty: any),
    and values for the permission document's placeholders. The official CLI sends `--key_params` as the
    raw string it was given, the API reference shows an object: both are read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ip_whitelist: tuple[str, ...] = ()
    values: dict[str, Scalar] = Field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, *, where: str = "key_params") -> KeyParams:
        if raw is None or raw == "":
            return cls()
        if isinstance(raw, str | bytes):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise InvalidPermissions(where, f'is not valid JSON ({exc}); e.g. {{"ip_whitelist": ["1.2.3.4"]}}') \
                    from None
        params = _object(raw, where, '{"ip_whitelist": ["1.2.3.4"]}')
        whitelist = params.get("ip_whitelist", [])
        if isinstance(whitelist, str):
            whitelist = [whitelist]
        if not isinstance(whitelist, list):
            raise InvalidPermissions(f"{where}.ip_whitelist", f"must be a list of addresses; got {_shown(whitelist)}")
        networks = []
        for i, entry in enumerate(whitelist):
            try:
                networks.append(str(ipaddress.ip_network(str(entry).strip(), strict=False)))
            except ValueError:
                raise InvalidPermissions(f"{where}.ip_whitelist[{i}]",
                                         f"is not an IP address or network (1.2.3.4, 10.0.0.0/8); got {_shown(entry)}"
                                         ) from None
        values: dict[str, Scalar] = {}
        for name, value in params.items():
            if name == "ip_whitelist":
                continue
            if not PARAM_NAME.fullmatch(name):
                raise InvalidPermissions(f"{where}.{name}", "is not a placeholder name (letters, digits, _)")
            if not (isinstance(value, str | bool) or _is_number(value)):
                raise InvalidPermissions(f"{where}.{name}",
                                         f"must be a number, text or true/false; got {_shown(value)}")
            values[name] = value
        return cls(ip_whitelist=tuple(networks), values=values)

    def to_wire(self) -> dict[str, Any]:
        return {**({"ip_whitelist": list(self.ip_whitelist)} if self.ip_whitelist else {}), **self.values}

    def networks(self) -> Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return (ipaddress.ip_network(n) for n in self.ip_whitelist)
