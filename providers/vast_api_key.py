"""`vastai:ApiKey`: one team's scoped key (its preview or its deploy key), made inside the team by the team's
bootstrap key, delivered as an envelope. Contract: `fleet.api_key`; envelopes: `fleet.envelope`.

- `check`: the recipient's secret must be in the environment (the platform job holds every recipient's), and
  `sealed_for` records which secret the envelope is sealed for: kept while the secret still matches, renewed
  when it changed, so a new recipient secret is a diff at preview and `up` reseals.
- `create`: `POST /auth/apikeys/` with the declared permissions and IP allow-list (Vast shows the key once: it
  goes into the `key` output, a Pulumi secret, and into the envelope); a key whose envelope could not be
  sealed is revoked again before the create fails, so no key nobody holds is left behind.
- `diff`: what the key *is* (team, kind, name, permissions, allow-list, rotation) replaces it, create before
  delete: the new key and its envelope exist before the old key is revoked, and a team's next run opens the
  new envelope. A new recipient secret or maximum age changes in place.
- `read` (refresh): the key as Vast lists it among the bootstrap key's holder's keys in the team; not listed
  is gone (revoked in the console: the next `up` makes a new one). Its permissions and allow-list come back
  as the inputs, so a difference from the declaration shows (and replaces the key).
- `update`: reseals the envelope for the current recipient secret. `delete`: revokes; already gone is success.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, Resource, UpdateResult
from pulumi.runtime import rpc

from fleet.access_fields import canonical_permissions
from fleet.api_key import IN_PLACE_FIELDS, REPLACE_FIELDS, SECRET_OUTPUTS, ApiKeyInputs, ApiKeyOutputs
from fleet.envelope import EnvelopeError, SealedFor, check_secret, recipient_env, seal
from fleet.permissions import KeyParams
from providers.access import AccessError, AccessProvider, checked_inputs, validate
from vastclient import ApiKeyInfo, NotFoundError, VastClient, VastError

OUTPUT_FIELDS = tuple(f for f in ApiKeyOutputs.model_fields if f not in ApiKeyInputs.model_fields)


def _inputs(props: Mapping[str, Any]) -> ApiKeyInputs:
    return ApiKeyInputs.model_validate({k: v for k, v in props.items() if k in ApiKeyInputs.model_fields})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_secret(key: Any) -> Any:
    """The key as a secret on the wire. The SDK's provider host tells the engine it accepts no secrets, so the
    engine would take a plain `key` in a response as a plain value (and log it so in its debug log) before
    `additional_secret_outputs` marks it; returned as a secret, it is a secret from the first byte."""
    return rpc.wrap_rpc_secret(rpc.unwrap_rpc_secret(key))


def _unwrapped(key: Any) -> Any:
    return rpc.unwrap_rpc_secret(key)


def _listed(client: VastClient, key_id: int) -> ApiKeyInfo | None:
    return next((k for k in client.list_api_keys() if k.id == key_id), None)


class VastApiKeyProvider(AccessProvider):
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._environ = environ

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._environ = None

    def _recipient_secret(self, inputs: ApiKeyInputs) -> str:
        """The recipient's secret from this process's environment (the platform job's)."""
        env = os.environ if self._environ is None else self._environ
        return check_secret(env.get(inputs.recipient), variable=inputs.recipient)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs, failures = validate(ApiKeyInputs, news)
        if inputs is None:
            return CheckResult(news, failures)
        expected = recipient_env(inputs.team, inputs.kind)
        if inputs.recipient != expected:
            return CheckResult(news, [CheckFailure("recipient", f"{inputs.team}'s {inputs.kind} key is sealed for "
                                                                f"{expected}, not {inputs.recipient}")])
        try:
            secret = self._recipient_secret(inputs)
        except EnvelopeError as err:
            return CheckResult(news, [CheckFailure("recipient", f"{inputs.team}'s {inputs.kind} key: {err}")])
        previous = SealedFor.parse(olds.get("sealed_for")) if olds.get("recipient") == inputs.recipient else None
        sealed_for = previous if previous is not None and previous.matches(secret) else SealedFor.of(secret)
        return CheckResult({**checked_inputs(inputs, news), "sealed_for": str(sealed_for)}, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_FIELDS if olds.get(k) != news.get(k)]
        changes = replaces + [k for k in IN_PLACE_FIELDS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changes), replaces=replaces, stables=["team", "kind"],
                          delete_before_replace=False)

    def _outputs(self, inputs: ApiKeyInputs, *, key_id: int, key: str, created_at: float | None) -> dict[str, Any]:
        envelope = seal(key, secret=self._recipient_secret(inputs), team=inputs.team, kind=inputs.kind, key_id=key_id,
                        key_name=inputs.name, rotation=inputs.rotation, sealed_at=_now())
        outputs = ApiKeyOutputs(**inputs.model_dump(), key_id=key_id, key=key, created_at=created_at,
                                envelope=envelope.model_dump(mode="json"))
        return {**outputs.model_dump(mode="json"), "key": _as_secret(outputs.key.get_secret_value())}

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = _inputs(props)
        with self.reported(inputs.team, f"create its {inputs.kind} key", "run `pulumi up` again once that is fixed"):
            client = self.team_client(inputs.team, inputs.team_id)
            created = client.create_api_key(inputs.name, permissions=inputs.permissions,
                                            key_params=KeyParams(ip_whitelist=tuple(inputs.ip_allowlist)))
            try:
                listed = _listed(client, created.id)
                outs = self._outputs(inputs, key_id=created.id, key=created.key.get_secret_value(),
                                     created_at=listed.created_at if listed and listed.created_at
                                     else client.last_server_time)
            except BaseException:
                # A key whose envelope nobody can open must not outlive this call.
                with contextlib.suppress(VastError):
                    client.delete_api_key(created.id)
                raise
            return CreateResult(id_=str(created.id), outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = _inputs(props)
        with self.reported(inputs.team, f"read its {inputs.kind} key", "the state is unchanged; refresh again once "
                           "that is fixed"):
            listed = _listed(self.team_client(inputs.team, inputs.team_id), int(id_))
            if listed is None:
                return ReadResult(id_="", outs={})  # revoked: the next `up` makes (and delivers) a new key
            seen = dict(inputs.model_dump(mode="json"))
            if listed.permissions is not None:
                seen["permissions"] = canonical_permissions(listed.permissions.to_wire())
            seen["ip_allowlist"] = list(listed.key_params.ip_whitelist)
            if listed.name:
                seen["name"] = listed.name
            outs = {**props, **seen, "key": _as_secret(props.get("key"))}
            return ReadResult(id_=id_, outs=outs, inputs={k: v for k, v in outs.items()
                                                          if k in ApiKeyInputs.model_fields})

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = _inputs(news)
        key = _unwrapped(olds.get("key"))
        with self.reported(inputs.team, f"reseal its {inputs.kind} key", "run `pulumi up` again once that is fixed"):
            if not isinstance(key, str) or not key:
                raise AccessError(f"{inputs.team}: the state holds no {inputs.kind} key to reseal; rotate it (set a "
                                  f"new `rotated` date on keys.{inputs.kind} in the platform declaration)")
            created = olds.get("created_at")
            created_at = float(created) if isinstance(created, int | float) else None
            return UpdateResult(outs=self._outputs(inputs, key_id=int(id_), key=key, created_at=created_at))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        inputs = _inputs(props)
        with self.reported(inputs.team, f"revoke its {inputs.kind} key #{id_}", "it is still in the state (and still "
                           "works); run the same command again once that is fixed"):
            try:
                self.team_client(inputs.team, inputs.team_id).delete_api_key(int(id_))
            except NotFoundError:
                return


PROVIDER = VastApiKeyProvider()


class ApiKey(Resource, module="vastai", name="ApiKey"):
    """A team's scoped key, declared by the platform stack: `key` is a Pulumi secret, `envelope` the delivery."""

    key_id: pulumi.Output[int]
    envelope: pulumi.Output[dict[str, Any]]
    created_at: pulumi.Output[float]

    def __init__(self, resource_name: str, inputs: ApiKeyInputs, *, team_id: pulumi.Input[int],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {**inputs.model_dump(mode="json"), "team_id": team_id,
                                 **dict.fromkeys(OUTPUT_FIELDS)}
        secret = pulumi.ResourceOptions(additional_secret_outputs=list(SECRET_OUTPUTS))
        super().__init__(PROVIDER, resource_name, props, pulumi.ResourceOptions.merge(opts, secret))
