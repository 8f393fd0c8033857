"""The errors a user meets first name the problem and the command that fixes it (issue 7).

Engine-driven, where the error surfaces through `pulumi preview` (Vast.ai unreachable or the emulator not
running, a wrong or missing key, a typo in a stack's fleet); the ones that start no engine (no Go and no CLI, a
missing team policy file) are in tests/test_first_errors.py. The pack's own verdict for a stack previewed without
its team file is covered by tests/e2e/test_policies.py::test_no_team_file_fails_closed.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable

import pytest

from emulator.bodies import ConfigBody
from tests.e2e.conftest import TeamEnv
from tests.e2e.test_fleet import ONE_NOTEBOOK

TEAM = "data-science"


def preview_text(env: TeamEnv) -> str:
    result = env.ws.preview(TEAM, policy=False)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert env.api_key not in text
    return text


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.mark.engine
def test_emulator_not_running_and_vast_unreachable(team_env: Callable[[str], TeamEnv]) -> None:
    env = team_env(TEAM)
    url = f"http://127.0.0.1:{closed_port()}"
    env.ws.cli.run("config", "set", "vastai:url", url, stack=TEAM)
    text = preview_text(env)
    assert f"the Vast.ai API at {url} is unreachable" in text
    assert "start it with `.venv/bin/python -m emulator --port 8787`" in text
    assert f"pulumi config set vastai:url http://127.0.0.1:8787 --stack {TEAM}" in text

    env.ws.cli.run("config", "set", "vastai:url", "http://vast-api.invalid", stack=TEAM)
    text = preview_text(env)
    assert "the Vast.ai API at http://vast-api.invalid is unreachable" in text
    assert "check the network (proxy, DNS, firewall)" in text
    assert f"pulumi config set vastai:url https://console.vast.ai --stack {TEAM}" in text


@pytest.mark.engine
def test_wrong_or_missing_key(team_env: Callable[[str], TeamEnv]) -> None:
    env = team_env(TEAM)
    env.ws.cli.set_secret("vastai:apiKey", "not-the-teams-key", stack=TEAM)
    text = preview_text(env)
    assert f"Vast.ai at {env.emulator.url} refused the API key" in text
    assert "the stack's `vastai:apiKey` (or the key vastguard delivered from the platform stack) is wrong or " in text
    assert "revoked, or lacks the permission to get a price quote" in text
    assert f"pulumi config set --secret vastai:apiKey --stack {TEAM}" in text
    assert "not-the-teams-key" not in text

    env.ws.cli.run("config", "rm", "vastai:apiKey", stack=TEAM)
    text = preview_text(env)
    assert "no Vast.ai API key" in text
    assert "pulumi config set --secret vastai:apiKey" in text


def one_line_errors(text: str) -> list[str]:
    """The errors an `up` or `destroy` printed, each once (the engine repeats them under Diagnostics)."""
    return sorted({line.split("error: ", 1)[1] for line in text.splitlines() if "error: " in line})


def assert_no_raw_failures(text: str) -> None:
    for raw in ("Exception calling application", "Traceback", "KeyboardInterrupt", "rpc error"):
        assert raw not in text, text[-4000:]


@pytest.mark.engine
def test_vast_unreachable_mid_up_says_what_and_what_next_in_one_line(team_env: Callable[[str], TeamEnv]) -> None:
    env = team_env(TEAM)
    env.ws.set_fleet(TEAM, ONE_NOTEBOOK)
    env.emulator.market.configure(ConfigBody(provision_delay=4))  # the instances are still booting ...
    cli = env.ws.cli
    up = subprocess.Popen([str(cli.engine.pulumi), "up", "--yes", "--skip-preview", "--non-interactive",
                           "--stack", TEAM], cwd=cli.cwd, env=cli.env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while len(env.live()) < 2 and time.monotonic() < deadline and up.poll() is None:
        time.sleep(0.1)
    url = env.emulator.url
    env.emulator.stop()  # ... when Vast stops answering
    text, _ = up.communicate(timeout=600)
    assert up.returncode != 0
    assert_no_raw_failures(text)
    errors = one_line_errors(text)
    for name in ("notebook-0", "notebook-1"):
        assert any(e.startswith(f"{name}: the Vast.ai API at {url} is unreachable (") and
                   e.endswith("once that is fixed, run `pulumi up` again: it adopts anything this create rented, "
                              "by its ownership tag") for e in errors), errors
    assert env.api_key not in text


@pytest.mark.engine
def test_vast_unreachable_mid_destroy_says_what_and_what_next_in_one_line(
        team_env: Callable[[str], TeamEnv]) -> None:
    env = team_env(TEAM)
    env.ws.set_fleet(TEAM, ONE_NOTEBOOK)
    env.ws.up(TEAM, policy=False)
    url = env.emulator.url
    env.emulator.stop()
    result = env.ws.destroy(TEAM, check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert_no_raw_failures(text)
    errors = [e for e in one_line_errors(text) if e.startswith("notebook-")]
    assert errors, one_line_errors(text)
    for error in errors:
        assert error.startswith(("notebook-0: the Vast.ai API at ", "notebook-1: the Vast.ai API at "))
        assert f"{url} is unreachable (" in error
        assert error.endswith("it is still in the state (and may still bill); run the same command again once that "
                              "is fixed")
    state = json.loads(env.ws.cli.run("stack", "export", stack=TEAM).stdout)["deployment"]["resources"]
    assert sum(r["type"].endswith("vastai:Instance") for r in state) == 2


@pytest.mark.engine
def test_typos_in_a_stacks_fleet(team_env: Callable[[str], TeamEnv]) -> None:
    env = team_env(TEAM)
    fleet = env.ws.fleet(TEAM)
    env.ws.set_fleet(TEAM, {"notebook": {**fleet["notebook"], "cuont": 2}})
    text = preview_text(env)
    assert f"invalid fleet declaration in stacks/Pulumi.{TEAM}.yaml" in text
    assert "cuont" in text

    env.ws.set_fleet(TEAM, {"notebook": {**fleet["notebook"], "gpu": "RTX_4O90"}})
    text = preview_text(env)
    assert "unknown GPU name 'RTX_4O90'" in text
    assert "RTX 4090" in text  # what the marketplace knows
    assert f"fix the group's `gpu` in stacks/Pulumi.{TEAM}.yaml" in text
