"""The one place that pins the Pulumi engine version.

The same version must be used by the CLI, the language host and the Python SDK (`pulumi==` in pyproject.toml);
tests/engine/test_engine_tooling.py checks that these three agree.

Why 3.259.0 and not a later 3.27x: the Go module proxy here serves github.com/pulumi/pulumi/pkg/v3 source zips
only up to v3.259.0 (v3.260.0 onwards answer 403 "This module version is not available"), and the CLI can only
be built from that module.
"""

PULUMI_VERSION = "3.259.0"
GO_MIN_VERSION = (1, 25)
