"""Marks the budget guard keeps in an instance's Vast label: the one record of an instance that every reader sees
(the preview's spend reading, every guard, on any state backend) and that goes wherever the instance goes.

A label is `<user label> <marks> [<ownership tag>]` for a stack's instance (the tag stays last: the provider
finds its instances by it) and `<label> <marks>` for one rented outside Pulumi. A mark is `{vg-<kind>:<value>}`:

- `paused`: the guard stopped the instance when its team's budget window `<value>` (`day:2026-11-05@UTC`) ran
  out; it is started again when that window is over (or by `vastguard resume`);
- `idle`: the guard first saw its GPU below the team's idle threshold at `<value>` (epoch seconds).
"""

from __future__ import annotations

import re

MAX_LABEL = 256  # Vast's limit
MarkKind = str
PAUSED = "paused"
IDLE = "idle"
_MARK = re.compile(r"\s*\{vg-(?P<kind>[a-z]+):(?P<value>[^{}\s]+)\}")
_TAG = re.compile(r"\s*\[[^\[\]]*\]\s*$")


class LabelTooLongError(ValueError):
    pass


def marks(label: str | None) -> dict[str, str]:
    """kind -> value of every mark in the label."""
    return {m["kind"]: m["value"] for m in _MARK.finditer(label or "")}


def _split(label: str) -> tuple[str, str]:
    """(the label before the ownership tag, the tag with its leading space) of a label."""
    match = _TAG.search(label)
    return (label[:match.start()], label[match.start():]) if match else (label, "")


def without_mark(label: str | None, kind: str) -> str:
    head, tag = _split(label or "")
    head = re.sub(r"\s*\{vg-" + re.escape(kind) + r":[^{}\s]+\}", "", head)
    return (head + tag).strip()


def with_mark(label: str | None, kind: str, value: str) -> str:
    """The label with mark `kind` set to `value`, placed before the ownership tag."""
    if not re.fullmatch(r"[^{}\s]+", value):
        raise ValueError(f"a label mark's value has no spaces or braces: {value!r}")
    head, tag = _split(without_mark(label, kind))
    out = f"{head.rstrip()} {{vg-{kind}:{value}}}".strip() + tag
    if len(out) > MAX_LABEL:
        raise LabelTooLongError(f"the label would be {len(out)} characters with the guard's mark; Vast allows "
                                f"{MAX_LABEL}: shorten the instance's label")
    return out


_OWNERSHIP = re.compile(r"\[vg:(?P<stack>[^/\s\[\]]+)/[^\s\[\]]+\]\s*$")


def stack_of(label: str | None) -> str | None:
    """The stack named by a label's ownership tag (`[vg:<stack>/<name>#<digest>]`, see
    providers/provisioning.py); None for an instance rented outside Pulumi."""
    match = _OWNERSHIP.search(label or "")
    return match["stack"] if match else None
