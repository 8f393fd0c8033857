"""Pulumi entry point: the fleet program lives in program/ (importable, testable with mocks)."""

from program.fleet_program import run

run()
