"""Plain-language explanations of the Vast.ai errors a user meets first (at `pulumi preview`): each names the
problem and the command that fixes it. Never includes the key: client errors are already redacted."""

from __future__ import annotations

import urllib.parse
from typing import Any

from fleet.stack_config import API_KEY_CONFIG, SET_KEY_COMMAND, URL_CONFIG
from vastclient import DEFAULT_BASE_URL, URL_ENV, AuthError, MissingApiKeyError, VastError
from vastclient.errors import CreateOutcomeUnknownError, TransportError

EMULATOR_START = ".venv/bin/python -m emulator --port 8787"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def stack_of(props: dict[str, Any]) -> str:
    """The stack an instance belongs to, from its ownership tag (`vg:<stack>/<name>`); `<stack>` if unknown."""
    tag = str(props.get("ownership_tag") or "")
    return tag.removeprefix("vg:").split("/", 1)[0] if tag.startswith("vg:") and "/" in tag else "<stack>"


def explain(err: VastError, *, base_url: str | None, stack: str, doing: str = "get a price quote") -> str:
    """One line: what went wrong while the provider tried `doing`, and the command that fixes it."""
    url = (base_url or DEFAULT_BASE_URL).rstrip("/")
    if isinstance(err, MissingApiKeyError):
        return f"{err}: `{SET_KEY_COMMAND} --stack {stack}`"
    if isinstance(err, AuthError):
        # Vast answers 401 alike for a bad key and for a scoped key without the permission: name both.
        return (f"Vast.ai at {url} refused the API key ({err}): the stack's `{API_KEY_CONFIG}` (or the key vastguard "
                f"delivered from the platform stack) is wrong or revoked, or lacks the permission to {doing} (a "
                "read-only preview key cannot rent or change instances: deploy with the team's deploy key, "
                f"`vastguard ci up`); set a key of the stack's own with `{SET_KEY_COMMAND} --stack {stack}` (it "
                "prompts; or pipe it on stdin)")
    if isinstance(err, TransportError) and not isinstance(err, CreateOutcomeUnknownError):
        host = urllib.parse.urlsplit(url).hostname or ""
        if host in _LOOPBACK:
            fix = (f"if it is the local Vast.ai emulator, start it with `{EMULATOR_START}` and point "
                   f"`{URL_CONFIG}` at its port (`pulumi config set {URL_CONFIG} http://127.0.0.1:8787 --stack "
                   f"{stack}`) or {URL_ENV}")
        else:
            fix = (f"check the network (proxy, DNS, firewall) or the URL in `{URL_CONFIG}` / {URL_ENV} "
                   f"(`pulumi config set {URL_CONFIG} {DEFAULT_BASE_URL} --stack {stack}` for the real service)")
        return f"the Vast.ai API at {url} is unreachable ({err}); {fix}"
    return f"could not {doing} on Vast.ai at {url}: {err}"
