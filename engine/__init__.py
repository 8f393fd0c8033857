"""The pinned Pulumi engine: found on PATH or built from the Go module proxy into a versioned cache.

`ensure()` returns an `Engine` whose `bin_dir` holds `pulumi`, `pulumi-language-python`,
`pulumi-language-python-exec` and `pulumi-resource-pulumi-python`; `project_env()` is the environment every
project command runs Pulumi with (pinned engine first on PATH, local file backend, passphrase secrets).
"""

from engine.build import Engine, EngineError, ensure
from engine.env import DEFAULT_PASSPHRASE, project_env, repo_root
from engine.versions import PULUMI_VERSION

__all__ = ["DEFAULT_PASSPHRASE", "PULUMI_VERSION", "Engine", "EngineError", "ensure", "project_env", "repo_root"]
