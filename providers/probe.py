"""A tiny dynamic resource that proves the engine can run this project's providers.

The foundation's end-to-end test deploys it: its provider lives in the installed `providers` package, so the
engine's dynamic-provider process must import the project (not just unpickle a closure) for it to work.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult


def fingerprint(message: str) -> str:
    return hashlib.sha256(message.encode()).hexdigest()[:16]


class ProbeProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=fingerprint(props["message"]), outs={**props, "digest": fingerprint(props["message"])})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = olds.get("message") != news.get("message")
        return DiffResult(changes=changed, replaces=[], stables=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**news, "digest": fingerprint(news["message"])})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)


class Probe(Resource, module="vastguard", name="Probe"):
    digest: pulumi.Output[str]

    def __init__(self, name: str, message: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(ProbeProvider(), name, {"message": message, "digest": None}, opts)
