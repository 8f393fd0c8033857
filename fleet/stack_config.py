"""The names a team stack's configuration uses, stated once: the program, the provider, CI, the demo and the
reports read and write them (`stacks/Pulumi.<team>.yaml`; the key encrypted, as a Pulumi secret).

The environment variables that stand in for them outside a stack (`VAST_API_KEY`, `VAST_URL`) are the Vast.ai
client's, as the official CLI names them: `vastclient.API_KEY_ENV`, `vastclient.URL_ENV`.
"""

from __future__ import annotations

API_KEY_CONFIG = "vastai:apiKey"
"""The team's Vast.ai key: `pulumi config set --secret vastai:apiKey` (it prompts: nothing in shell history)."""
URL_CONFIG = "vastai:url"
"""The Vast.ai API base URL, when it is not the real service (the local emulator)."""
FLEET_CONFIG = "vastguard:fleet"
"""The team's fleet: the one input a pull request's preview takes from the PR (vastguard/rules_from.py)."""
PROVISION_TIMEOUT_CONFIG = "vastai:provisionTimeout"
"""Seconds a create waits for its instance to boot."""

SET_KEY_COMMAND = f"pulumi config set --secret {API_KEY_CONFIG}"
"""How a team stores its key (it prompts, or reads stdin; never the key in argv)."""
TEAM_FILES_ENV = "VASTGUARD_TEAM_FILES"
"""Where the program finds the platform's team files (default: `policies/teams` of the project it runs in), to read
the team's budget time zone and windows for its `vastai:TeamSpend`."""
