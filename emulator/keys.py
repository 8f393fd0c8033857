"""API key operations (`/api/v0/auth/apikeys/`): create (the key is in that one response and nowhere else),
list, show one, delete. As Vast's backend describes them (vast-ai/docs api-reference/openapi/yaml:
auto_post/get/delete_api_v0_auth_apikeys*): a key is created for the caller in the caller's context (a key
made with a team key acts on the team); it may not be given more than the caller holds ("not authorized to
create a key with the specified permissions", 401); primary keys cannot be deleted; keys of other users are
not the caller's to delete (401); listings never carry a key.
"""

from __future__ import annotations

import secrets

from emulator.access import Caller
from emulator.bodies import CreateApiKeyBody
from emulator.errors import InvalidArgs, InvalidPermissionsError, NotFound, Unauthorized
from emulator.identity import IdentityCore
from emulator.state import ApiKey
from fleet.permissions import InvalidPermissions, KeyParams, PermissionSet

MAX_KEY_NAME = 255


def new_secret() -> str:
    """64 hex characters, the length of a Vast key."""
    return secrets.token_hex(32)


def parse_permissions(raw: object, *, where: str = "permissions", placeholders: bool = True) -> PermissionSet:
    try:
        doc = PermissionSet.parse(raw, where=where)
    except InvalidPermissions as exc:
        raise InvalidPermissionsError(str(exc)) from None
    if not placeholders and doc.placeholders():
        names = ", ".join(sorted(doc.placeholders()))
        raise InvalidPermissionsError(f"{where}: placeholders ({names}) are filled from an API key's key_params; "
                                      "a role has none: write the values")
    return doc


class KeyOperations(IdentityCore):
    """What a key may do about keys."""

    def create_api_key(self, caller: Caller, body: CreateApiKeyBody) -> tuple[ApiKey, str]:
        """The new key's record and the key itself (shown once: the caller's response is its only copy)."""
        name = (body.name or "").strip()
        if not name:
            raise InvalidArgs('name is required: {"name": "ci-deploy", "permissions": {...}}')
        if len(name) > MAX_KEY_NAME:
            raise InvalidArgs(f"name is {len(name)} characters; at most {MAX_KEY_NAME}")
        try:
            params = KeyParams.parse(body.key_params)
        except InvalidPermissions as exc:
            raise InvalidArgs(str(exc)) from None
        if body.permissions is None:
            permissions = caller.key.permissions  # never more than the creating key holds
        else:
            try:
                permissions = parse_permissions(body.permissions).resolve(params.values)
            except InvalidPermissions as exc:
                raise InvalidPermissionsError(str(exc)) from None
            beyond = self._beyond(caller, permissions)
            if beyond is not None:
                raise Unauthorized(f"permissions exceed the caller's: {beyond}",
                                   msg=f"Authorization Error. Not authorized to create a key with the specified "
                                       f"permissions: {beyond}.")
        secret = new_secret()
        with self.lock:
            key = self.store_key(secret, account_id=caller.account.id, user_id=caller.user.id, name=name,
                                 key_type="team" if caller.in_team else "api", permissions=permissions,
                                 key_params=params)
            return key.model_copy(), secret

    def _visible(self, caller: Caller) -> list[ApiKey]:
        return [k for k in self.state.api_keys.values()
                if k.deleted_at is None and k.account_id == caller.account.id and k.user_id == caller.user.id]

    def api_keys(self, caller: Caller) -> list[ApiKey]:
        """The caller's keys in the caller's context (a team key lists the holder's keys in that team)."""
        with self.lock:
            return [k.model_copy() for k in self._visible(caller)]

    def api_key(self, caller: Caller, key_id: int) -> ApiKey:
        with self.lock:
            for key in self._visible(caller):
                if key.id == key_id:
                    return key.model_copy()
        raise NotFound("API Key not found.")

    def delete_api_key(self, caller: Caller, key_id: int) -> None:
        with self.lock:
            key = self.state.api_keys.get(key_id)
            if key is None or key.deleted_at is not None or key.account_id != caller.account.id:
                raise NotFound("API Key not found.")
            if key.user_id != caller.user.id:
                raise Unauthorized("another user's key", msg="You do not have permission to delete this API Key.")
            if key.primary:
                raise InvalidArgs("You cannot delete your primary key.")
            self._revoke(key, self.clock.now())
            self._touch()
