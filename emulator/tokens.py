"""Keyset page tokens, as Vast shapes them: base64 JSON of the last row's sort values
(`{"values": {"id": 25078234}, "os_page": 0}` in the official CLI's own example)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from emulator.errors import InvalidArgs
from emulator.filters import OrderKey


def encode_token(keys: Sequence[OrderKey], values: Sequence[Any]) -> str:
    """Vast's tokens are base64 JSON of the last row's sort values (`{"values": {"id": 25078234},
    "os_page": 0}` in the official CLI's own example); ours have the same shape."""
    payload = {"values": {k.field: v for k, v in zip(keys, values, strict=True)}, "os_page": 0}
    return base64.b64encode(json.dumps(payload).encode()).decode()


def decode_token(token: str, keys: Sequence[OrderKey], *, where: str) -> list[Any]:
    try:
        payload = json.loads(base64.b64decode(token.encode(), validate=True))
        values = payload["values"]
        return [values[k.field] for k in keys]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidArgs(f"{where}: after_token is not a token from this listing with this order") from None

