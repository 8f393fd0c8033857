"""Pulumi entry point: the programs live in program/ (importable, testable with mocks); the stack's config picks
the fleet program (a team's stack) or the platform program (`vastguard:platform`)."""

from program import main

main()
