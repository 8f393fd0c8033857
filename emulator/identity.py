"""Who is calling: API keys (stored as SHA-256 digests only), authentication into a `Caller`, the bounds a
caller's permissions set on what it may grant, and the audit log of what each key did.

`store_key` is the one place every key enters the market (an account's main key, a key created through
`POST /api/v0/auth/apikeys/`, a key seeded through the control plane): the secrets sweep of the test suite
records each key there, and nothing after it ever sees the key again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from emulator.access import Caller, Endpoint, ip_allowed
from emulator.errors import AuthError, Conflict, Unauthorized
from emulator.lifecycle import MarketCore
from emulator.state import Account, ApiKey, AuditEntry, Role, key_digest
from fleet.permissions import KeyParams, PermissionSet


class IdentityCore(MarketCore):
    """Keys and callers, on top of the market's state, clock and lock."""

    def store_key(self, api_key: str, *, account_id: int, user_id: int, name: str | None,
                  key_type: Literal["api", "team"], primary: bool = False,
                  permissions: PermissionSet | None = None, key_params: KeyParams | None = None) -> ApiKey:
        """Keep a new key (its digest) for `account_id`, held by `user_id`."""
        with self.lock:
            digest = key_digest(api_key)
            if digest in self._by_key:
                raise Conflict("an account or key with this API key already exists")
            key_id = self.state.next_key_id
            self.state.next_key_id += 1
            key = ApiKey(id=key_id, key_sha256=digest, account_id=account_id, user_id=user_id, name=name,
                         key_type=key_type, primary=primary, permissions=permissions,
                         key_params=key_params or KeyParams(), created_at=self.clock.now())
            self.state.api_keys[key_id] = key
            self._by_key[digest] = key_id
            self._touch()
            return key

    def _revoke(self, key: ApiKey, now: float) -> None:
        key.deleted_at = now
        self._by_key.pop(key.key_sha256, None)

    def _caller(self, api_key: str | None, ip: str) -> Caller:
        if not api_key:
            raise AuthError()
        s = self.state
        key_id = self._by_key.get(key_digest(api_key))
        if key_id is None:
            raise AuthError()
        key = s.api_keys[key_id]
        account, user = s.accounts[key.account_id], s.accounts[key.user_id]
        role: Role | None = None
        if account.kind == "team":
            member = s.members.get(f"{account.id}:{user.id}")
            if member is None:  # removal revokes a member's team keys; this is a key that outlived its holder
                raise AuthError()
            role = s.roles[member.role_id]
        return Caller(key=key, account=account, user=user, role=role, ip=ip)

    def identify(self, api_key: str | None, ip: str) -> Caller:
        """The caller behind a key, used from address `ip`: 401 `auth_error` for an unknown or revoked key,
        Vast's authorization error for an address outside the key's `ip_whitelist`."""
        with self.lock:
            caller = self._caller(api_key, ip)
        if not ip_allowed(caller.key, ip):
            raise Unauthorized("ip_whitelist")
        return caller

    def authenticate(self, api_key: str | None) -> Account:
        """The account a key acts on (no address check: for in-process callers)."""
        with self.lock:
            return self._caller(api_key, "127.0.0.1").account

    @staticmethod
    def bounds(caller: Caller) -> list[tuple[str, PermissionSet]]:
        """What limits what this caller may grant (to a new key or role): its key's own document and, in a
        team, its role's. Empty: a main key of a personal account, which may grant anything."""
        found = []
        if caller.key.permissions is not None:
            found.append(("this key", caller.key.permissions))
        if caller.role is not None:
            found.append((f"the role {caller.role.name}", caller.role.permissions))
        return found

    def _beyond(self, caller: Caller, wanted: PermissionSet) -> str | None:
        for whose, bound in self.bounds(caller):
            beyond = wanted.exceeds(bound)
            if beyond:
                return f"{', '.join(beyond)} (beyond what {whose} holds)"
        return None

    # -------------------------------------------------------------------------------------- audit log

    def record_audit(self, caller: Caller, endpoint: Endpoint, params: Mapping[str, Any],
                     outcome: Mapping[str, Any] | None = None) -> None:
        """An important action, in the log of the account the key acted on (Vast: "the authenticated user's
        audit log entries"). Of the request only `endpoint.audited` parameters are kept (never an env, an
        onstart script or a registry login); `outcome` adds what the action made (the new instance's id)."""
        if endpoint.audited is None:
            return
        kept = {name: params[name] for name in endpoint.audited if name in params} | dict(outcome or {})
        with self.lock:
            entry_id = self.state.next_audit_id
            self.state.next_audit_id += 1
            self.state.audit.append(AuditEntry.model_construct(  # trusted values: skip validation on this path
                id=entry_id, account_id=caller.account.id, user_id=caller.user.id, api_key_id=caller.key.id,
                ip_address=caller.ip, api_route=endpoint.name, args=kept, created_at=self.clock.now()))
            self._touch()

    def audit_logs(self, caller: Caller) -> list[AuditEntry]:
        with self.lock:
            return [e.model_copy() for e in self.state.audit if e.account_id == caller.account.id]
