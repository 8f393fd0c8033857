"""Key envelopes (fleet/envelope.py): only the recipient's secret opens one, the header is bound to the key, the
envelope holds no trace of the key, and every refusal names the variable to set (never a secret)."""

from __future__ import annotations

import base64
import json
import secrets

import pytest

from fleet.access_fields import recipient_env
from fleet.envelope import (
    MIN_SECRET_LENGTH,
    Envelope,
    EnvelopeError,
    SealedFor,
    WrongSecretError,
    open_envelope,
    seal,
)

KEY = "key-" + secrets.token_hex(24)
SECRET = secrets.token_urlsafe(32)


def sealed(**changes: object) -> Envelope:
    fields: dict[str, object] = {"secret": SECRET, "team": "ml-research", "kind": "deploy", "key_id": 500007,
                                 "key_name": "vastguard/ml-research/deploy/2026-11-01", "rotation": "2026-11-01",
                                 "sealed_at": "2026-12-01T09:00:00Z", **changes}
    return seal(KEY, **fields)  # type: ignore[arg-type]


def test_the_recipient_opens_it_and_the_envelope_holds_no_trace_of_the_key() -> None:
    envelope = sealed()
    assert open_envelope(envelope, SECRET) == KEY
    assert envelope.recipient == "VASTGUARD_DEPLOY_SECRET_ML_RESEARCH" == recipient_env("ml-research", "deploy")
    text = json.dumps(envelope.model_dump())
    encoded = (base64.b64encode(KEY.encode()).decode()[:20], base64.urlsafe_b64encode(KEY.encode()).decode()[:20])
    for form in (KEY, *encoded, SECRET):
        assert form not in text
    # Fresh salt and nonce each time: two envelopes of one key share nothing.
    again = sealed()
    assert (again.salt, again.nonce, again.ciphertext) != (envelope.salt, envelope.nonce, envelope.ciphertext)
    assert Envelope.parse(json.loads(text), where="x") == envelope


def test_another_secret_does_not_open_it_and_the_error_names_the_variable() -> None:
    with pytest.raises(WrongSecretError) as err:
        open_envelope(sealed(), secrets.token_urlsafe(32))
    message = str(err.value)
    assert ("VASTGUARD_DEPLOY_SECRET_ML_RESEARCH does not open ml-research's deploy key envelope (key #500007)"
            in message)
    assert "pulumi up" in message and SECRET not in message


@pytest.mark.parametrize("field", ["team", "kind", "key_id", "rotation", "recipient"])
def test_an_edited_header_fails_to_open(field: str) -> None:
    """The header is the associated data: an envelope moved to another team or kind, or claiming another key id
    or rotation, is refused rather than delivering a key under a false name."""
    envelope = sealed()
    edited = {"team": "data-science", "kind": "preview", "key_id": 1, "rotation": "2027-01-01",
              "recipient": "VASTGUARD_DEPLOY_SECRET_DATA_SCIENCE"}[field]
    with pytest.raises(WrongSecretError):
        open_envelope(envelope.model_copy(update={field: edited}), SECRET)


def test_a_tampered_ciphertext_fails_to_open() -> None:
    envelope = sealed()
    raw = bytearray(base64.urlsafe_b64decode(envelope.ciphertext + "=" * (-len(envelope.ciphertext) % 4)))
    raw[0] ^= 1
    tampered = envelope.model_copy(update={"ciphertext": base64.urlsafe_b64encode(bytes(raw)).decode()})
    with pytest.raises(WrongSecretError):
        open_envelope(tampered, SECRET)


def test_a_missing_or_weak_secret_is_refused_naming_the_variable() -> None:
    with pytest.raises(EnvelopeError, match=r"VASTGUARD_DEPLOY_SECRET_ML_RESEARCH is not set: .*openssl rand"):
        open_envelope(sealed(), None)
    with pytest.raises(EnvelopeError, match=rf"is 5 characters long: .*at least {MIN_SECRET_LENGTH}"):
        sealed(secret="short")
    with pytest.raises(EnvelopeError, match=r"VASTGUARD_PREVIEW_SECRET_ML_RESEARCH is not set"):
        sealed(secret="", kind="preview")


def test_an_envelope_of_another_version_or_shape_says_what_to_run() -> None:
    raw = sealed().model_dump()
    with pytest.raises(EnvelopeError, match=r"key_envelopes\.x: not a key envelope .*\(version: "):
        Envelope.parse({**raw, "version": 2}, where="key_envelopes.x")
    with pytest.raises(EnvelopeError, match=r"\(ciphertext: Field required\)"):
        Envelope.parse({k: v for k, v in raw.items() if k != "ciphertext"}, where="key_envelopes.x")


def test_sealed_for_verifies_the_secret_without_holding_it() -> None:
    verifier = SealedFor.of(SECRET)
    text = str(verifier)
    assert text.startswith("scrypt$") and SECRET not in text
    parsed = SealedFor.parse(text)
    assert parsed is not None and parsed.matches(SECRET)
    assert not parsed.matches(secrets.token_urlsafe(32))
    assert SealedFor.parse("md5$x$y") is None and SealedFor.parse(None) is None
    assert str(SealedFor.of(SECRET)) != text  # salted
