"""Proof that the pinned engine runs this project here: program, dynamic provider and policy pack."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import PULUMI_VERSION, Engine
from engine.build import reported_version
from providers.probe import fingerprint
from tests.e2e.conftest import VENV, write_project
from vastguard.pulumi_cli import PulumiCLI

pytestmark = pytest.mark.engine

PROBE_PROGRAM = textwrap.dedent(
    """
    import pulumi
    from providers.probe import Probe

    probe = Probe("probe", message=pulumi.Config().get("message") or "hello")
    pulumi.export("digest", probe.digest)
    """
)

MANDATORY_PACK_MAIN = textwrap.dedent(
    """
    from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy

    def no_forbidden(args, report_violation):
        if args.resource_type.endswith("vastguard:Probe") and args.props.get("message") == "forbidden":
            report_violation("probe message 'forbidden' is not allowed; choose another message")

    PolicyPack(
        name="engine-proof",
        enforcement_level=EnforcementLevel.MANDATORY,
        policies=[ResourceValidationPolicy(name="no-forbidden-message", description="Denies a message.",
                                           validate=no_forbidden)],
    )
    """
)


def test_engine_reports_pinned_version(engine: Engine) -> None:
    assert reported_version(engine.pulumi) == PULUMI_VERSION
    for name in ("pulumi-language-python", "pulumi-resource-pulumi-python", "pulumi-language-python-exec"):
        assert (engine.bin_dir / name).exists(), name


def test_preview_up_history_destroy_with_project_provider(
    tmp_path: Path, make_cli: Callable[[Path], PulumiCLI]
) -> None:
    project = tmp_path / "probe"
    write_project(project, name="probe", main=PROBE_PROGRAM)
    cli = make_cli(project)
    cli.run("stack", "init", "dev")

    preview = cli.json("preview", stack="dev")
    steps = {s["urn"].rsplit("::", 1)[-1]: s for s in preview["steps"]}
    assert steps["probe"]["op"] == "create"
    assert steps["probe"]["newState"]["type"] == "pulumi-python:dynamic/vastguard:Probe"

    cli.run("up", "--yes", "--message", "first deploy", stack="dev")
    outputs = cli.json("stack", "output", stack="dev")
    assert outputs["digest"] == fingerprint("hello")

    cli.run("config", "set", "message", "changed", stack="dev")
    cli.run("up", "--yes", stack="dev")
    assert cli.json("stack", "output", stack="dev")["digest"] == fingerprint("changed")

    history = cli.json("stack", "history", stack="dev")
    assert [h["kind"] for h in history] == ["update", "update"]
    assert all(h["result"] == "succeeded" for h in history)
    assert history[-1]["message"] == "first deploy"
    assert history[-1]["resourceChanges"]["create"] == 2  # the stack and the probe

    cli.run("destroy", "--yes", stack="dev")
    export = json.loads(cli.run("stack", "export", stack="dev").stdout)
    assert not export["deployment"].get("resources")


def test_mandatory_policy_violation_fails_preview(tmp_path: Path, make_cli: Callable[[Path], PulumiCLI]) -> None:
    project = tmp_path / "probe"
    write_project(project, name="probe", main=PROBE_PROGRAM)
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "PulumiPolicy.yaml").write_text(
        f"runtime:\n  name: python\n  options:\n    virtualenv: {VENV}\ndescription: engine proof\n"
    )
    (pack / "__main__.py").write_text(MANDATORY_PACK_MAIN)
    cli = make_cli(project)
    cli.run("stack", "init", "dev")

    ok = cli.run("preview", "--policy-pack", str(pack), stack="dev")
    assert "no-forbidden-message" not in ok.stdout

    cli.run("config", "set", "message", "forbidden", stack="dev")
    denied = cli.run("preview", "--policy-pack", str(pack), stack="dev", check=False)
    assert denied.returncode != 0
    text = denied.stdout + denied.stderr
    assert "mandatory" in text and "no-forbidden-message" in text
    assert "probe message 'forbidden' is not allowed" in text
