"""Container image references against a team's allowed registries.

Why not a plain `startswith`: `pytorch/pytorch` as a prefix would also admit `pytorch/pytorch-miner`, and
`pytorch/pytorch` and `docker.io/pytorch/pytorch` are the same image. So both the image and each allow-list
entry are normalised the way Docker resolves names (no registry = `docker.io`, no namespace = `library/`),
and an entry either names one repository (any tag or digest of it is allowed) or, ending in `/`, a registry
or namespace (everything under it is allowed).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["image_allowed", "repository"]

DEFAULT_REGISTRY = "docker.io"


def _has_registry(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost"


def _qualify(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 1 and _has_registry(parts[0]):
        return path.lower() if parts[0] == DEFAULT_REGISTRY else parts[0].lower() + "/" + "/".join(parts[1:])
    if len(parts) == 1:
        return f"{DEFAULT_REGISTRY}/library/{path}"
    return f"{DEFAULT_REGISTRY}/{path}"


def repository(image: str) -> str:
    """`pytorch/pytorch:2.4.0@sha256:...` -> `docker.io/pytorch/pytorch` (registry and repository, no tag)."""
    ref = image.strip().split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref = ref[:colon]
    return _qualify(ref)


def _entry(entry: str) -> tuple[str, bool]:
    """An allow-list entry as (normalised prefix, whole-namespace?)."""
    text = entry.strip()
    if text.endswith("/"):
        head = text.rstrip("/")
        if "/" not in head:
            # `ghcr.io/` is a whole registry; `vastai/` a Docker Hub namespace
            return (head.lower() if _has_registry(head) else f"{DEFAULT_REGISTRY}/{head}") + "/", True
        return _qualify(head) + "/", True
    return repository(text), False


def image_allowed(image: str, allowed: Iterable[str]) -> bool:
    repo = repository(image)
    for entry in allowed:
        prefix, namespace = _entry(entry)
        if (namespace and repo.startswith(prefix)) or (not namespace and repo == prefix):
            return True
    return False
