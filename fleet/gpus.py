"""GPU names: one normalisation for the whole project (the client, the emulator, the provider and the pack).

Domain knowledge, not transport: it lives in `fleet/` so that the emulator (which must not import the client it
is meant to check) and the policy pack (whose start-up must not pay for an HTTP client) share it.

Vast.ai names GPUs with spaces on the wire (`RTX 4090`, `H100 SXM`, `A100 PCIE`); people and the official CLI
write underscores (`RTX_4090`). Allow-lists name families (`A100` means any A100). So: accept both spellings,
compare case-insensitively, resolve to the marketplace's own spelling, and let an entry match a name exactly or
as a whole-word prefix (`A100` matches `A100 PCIE` and `A100 SXM4`, never `A1000`). The set of known names comes
from the marketplace (`GET /api/v0/gpu_names/unique/`); these functions take it as an argument and do no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["UnknownGpuError", "allowed", "family", "normalize", "resolve", "resolve_allow_list"]


class UnknownGpuError(ValueError):
    """A GPU name the marketplace does not know; the message lists the names it does."""

    def __init__(self, name: str, known: Iterable[str], *, where: str = "") -> None:
        self.name = name
        self.known = sorted(set(known))
        prefix = f"{where}: " if where else ""
        super().__init__(
            f"{prefix}unknown GPU name {name!r}; the marketplace knows: {', '.join(self.known)} "
            "(underscores or spaces both work, e.g. RTX_4090 or 'RTX 4090'; a family such as A100 means any A100)"
        )


def normalize(name: str) -> str:
    """`rtx_4090 ` -> `RTX 4090`: underscores to spaces, single spaces, upper case (Vast's names are upper case
    apart from a few like `Tesla V100`, so comparisons must go through `resolve`)."""
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip().upper()


def family(entry: str, known: Iterable[str]) -> list[str]:
    """The known names that `entry` denotes: itself, or every name it is a whole-word prefix of."""
    want = normalize(entry)
    if not want:
        return []
    return sorted(k for k in set(known) if normalize(k) == want or normalize(k).startswith(want + " "))


def resolve(name: str, known: Iterable[str], *, where: str = "") -> list[str]:
    """Resolve a fleet's or an allow-list's GPU name to the marketplace names it means; raise if none."""
    known = list(known)
    members = family(name, known)
    if not members:
        raise UnknownGpuError(name, known, where=where)
    return members


def resolve_allow_list(entries: Sequence[str], known: Iterable[str], *, where: str = "") -> list[str]:
    known = list(known)
    out: set[str] = set()
    for entry in entries:
        out.update(resolve(entry, known, where=where))
    return sorted(out)


def allowed(gpu_name: str, allow_list: Iterable[str]) -> bool:
    """True when a marketplace GPU name is covered by an allow-list entry (exactly or by family)."""
    gpu = normalize(gpu_name)
    return any(gpu == normalize(e) or gpu.startswith(normalize(e) + " ") for e in allow_list if normalize(e))
