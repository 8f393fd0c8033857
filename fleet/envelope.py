"""A team key sealed for one recipient: how the platform stack hands each team its preview and deploy keys
without any person, or any other team's job, being able to read them.

The platform stack's `vastai:ApiKey` resources hold every key as a Pulumi secret, which only the platform's
passphrase opens. For delivery each key is also exported as an *envelope*: the key encrypted for one recipient
alone, the job that runs one team's previews (kind `preview`) or one team's deploys (kind `deploy`), whose secret
(`VASTGUARD_PREVIEW_SECRET_<TEAM>`, `VASTGUARD_DEPLOY_SECRET_<TEAM>`, see `recipient_env`) is in that job's
environment and nowhere else. An envelope is ciphertext only its recipient can open, so it is a plain stack
output: a team job reads it from the platform stack's checkpoint without the platform's passphrase, opens it in
memory and gives the key to its `pulumi` child as `VAST_API_KEY` (vastguard/keys.py).

Scheme `scrypt-aes256gcm` (version 1), from `cryptography` (a maintained library; nothing here is our own
cipher): the recipient secret is stretched with scrypt (N=2^15, r=8, p=1, a fresh 16-byte salt per envelope)
into an AES-256 key; the API key is sealed with AES-256-GCM under a fresh 96-bit nonce, the envelope's header
(team, kind, key id, key name, rotation, when it was sealed) bound to it as associated data, so an envelope
moved to another team or kind, or whose key id was edited, fails to open instead of delivering the wrong key.
Recipient secrets are generated, not remembered (`openssl rand -base64 32`); scrypt only slows down guessing a
weak one, and `MIN_SECRET_LENGTH` refuses the obviously weak.

`SealedFor` is a verifier of the recipient secret an envelope was sealed for (scrypt of the secret under its own
salt): the provider keeps it in the key's inputs, so a changed recipient secret shows in `pulumi preview` and
`up` reseals the envelope. It discloses no more than the envelope itself does (both let a guess be checked, at
scrypt's cost per guess).

A KMS instead of a passphrase (`awskms://...`, `gcpkms://...`, `azurekeyvault://...`, as Pulumi names them) fits
the same header with another `scheme`: the recipient would hold decrypt rights on its own KMS key rather than a
secret. Not built: see README.md, "Key delivery".
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet.access_fields import KEY_KINDS, KeyKind, recipient_env

__all__ = [
    "ENVELOPE_VERSION",
    "KEY_KINDS",
    "MIN_SECRET_LENGTH",
    "SCHEME",
    "Envelope",
    "EnvelopeError",
    "KeyKind",
    "SealedFor",
    "WrongSecretError",
    "check_secret",
    "open_envelope",
    "recipient_env",
    "seal",
]

SCHEME: Literal["scrypt-aes256gcm"] = "scrypt-aes256gcm"
ENVELOPE_VERSION: Literal[1] = 1
MIN_SECRET_LENGTH = 16
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_SALT_BYTES, _NONCE_BYTES = 16, 12


class EnvelopeError(ValueError):
    """An envelope, or the secret given to open it, that cannot be used; the message says what to fix and
    never holds a key or a secret."""


class WrongSecretError(EnvelopeError):
    """The secret is not the one the envelope was sealed for (or the envelope was altered)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"the envelope's {what} is not base64url") from None


def _stretch(secret: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(secret.encode())


def check_secret(secret: str | None, *, variable: str) -> str:
    """The secret, or an EnvelopeError naming the variable to set (never the value)."""
    if not secret:
        raise EnvelopeError(f"{variable} is not set: export the recipient's secret (generate one with "
                            f"`openssl rand -base64 32`; the platform job and this team's job hold the same value)")
    if len(secret) < MIN_SECRET_LENGTH:
        raise EnvelopeError(f"{variable} is {len(secret)} characters long: a recipient secret needs at least "
                            f"{MIN_SECRET_LENGTH} (generate one with `openssl rand -base64 32`)")
    return secret


class Envelope(BaseModel):
    """One sealed key, as the platform stack exports it (`key_envelopes.<team>.<kind>`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = ENVELOPE_VERSION
    scheme: Literal["scrypt-aes256gcm"] = SCHEME
    team: str = Field(min_length=1)
    kind: KeyKind
    key_id: int = Field(description="Vast's id of the sealed key: which key a consumer holds")
    key_name: str
    rotation: str = Field(description="the declaration's rotation stamp of the key (its `rotated` date)")
    sealed_at: str = Field(description="ISO-8601 UTC time the envelope was sealed")
    recipient: str = Field(description="the environment variable holding the recipient's secret")
    salt: str
    nonce: str
    ciphertext: str

    def header(self) -> bytes:
        """The associated data: everything a consumer relies on besides the key itself."""
        fields = self.model_dump(include={"version", "scheme", "team", "kind", "key_id", "key_name", "rotation",
                                          "sealed_at", "recipient"})
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, raw: object, *, where: str) -> Envelope:
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(envelope)"
            raise EnvelopeError(f"{where}: not a key envelope vastguard can open ({field}: {first['msg']}); "
                                "run the platform stack's `pulumi up` with this vastguard version") from None


def seal(api_key: str, *, secret: str, team: str, kind: KeyKind, key_id: int, key_name: str, rotation: str,
         sealed_at: str, salt: bytes | None = None, nonce: bytes | None = None) -> Envelope:
    """`api_key` encrypted for the holder of `secret` (the value of `recipient_env(team, kind)`)."""
    variable = recipient_env(team, kind)
    check_secret(secret, variable=variable)
    salt = salt or secrets.token_bytes(_SALT_BYTES)
    nonce = nonce or secrets.token_bytes(_NONCE_BYTES)
    unsealed = Envelope(team=team, kind=kind, key_id=key_id, key_name=key_name, rotation=rotation,
                        sealed_at=sealed_at, recipient=variable, salt=_b64(salt), nonce=_b64(nonce), ciphertext="")
    sealed = AESGCM(_stretch(secret, salt)).encrypt(nonce, api_key.encode(), unsealed.header())
    return unsealed.model_copy(update={"ciphertext": _b64(sealed)})


def open_envelope(envelope: Envelope, secret: str | None) -> str:
    """The key inside, for the holder of the envelope's recipient secret; WrongSecretError otherwise."""
    key = _stretch(check_secret(secret, variable=envelope.recipient), _unb64(envelope.salt, "salt"))
    try:
        return AESGCM(key).decrypt(_unb64(envelope.nonce, "nonce"), _unb64(envelope.ciphertext, "ciphertext"),
                                   envelope.header()).decode()
    except InvalidTag:
        raise WrongSecretError(
            f"{envelope.recipient} does not open {envelope.team}'s {envelope.kind} key envelope (key "
            f"#{envelope.key_id}): it holds another secret than the one the platform stack sealed it for. Set it "
            f"to the platform's value, or, if the secret was changed on purpose, run the platform stack's "
            f"`pulumi up` with the new value so it reseals the envelope") from None


class SealedFor(BaseModel):
    """A verifier of a recipient secret: `scrypt$<salt>$<digest>` (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    salt: str
    digest: str

    @classmethod
    def of(cls, secret: str, *, salt: bytes | None = None) -> SealedFor:
        salt = salt or secrets.token_bytes(_SALT_BYTES)
        return cls(salt=_b64(salt), digest=_b64(_stretch(secret, salt)[:16]))

    @classmethod
    def parse(cls, text: object) -> SealedFor | None:
        if not isinstance(text, str):
            return None
        parts = text.split("$")
        if len(parts) != 3 or parts[0] != "scrypt":
            return None
        return cls(salt=parts[1], digest=parts[2])

    def matches(self, secret: str) -> bool:
        try:
            digest = _stretch(secret, _unb64(self.salt, "salt"))[:16]
        except EnvelopeError:
            return False
        return hmac.compare_digest(_b64(digest), self.digest)

    def __str__(self) -> str:
        return f"scrypt${self.salt}${self.digest}"
