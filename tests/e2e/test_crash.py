"""Killing `pulumi up` mid-create, then running it again: the declared instances, no orphan, no duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

from emulator.bodies import ConfigBody
from tests.e2e.conftest import TeamEnv
from tests.e2e.test_fleet import ONE_NOTEBOOK


def test_killed_up_converges_without_orphans(team_env: Callable[[str], TeamEnv]) -> None:
    env = team_env("data-science")
    env.ws.set_fleet("data-science", ONE_NOTEBOOK)
    # Instances take a while to boot, so the kill lands while the provider is waiting for `running`.
    env.emulator.market.configure(ConfigBody(provision_delay=8))

    cli = env.ws.cli
    proc = subprocess.Popen(
        [str(cli.engine.pulumi), "up", "--yes", "--skip-preview", "--non-interactive", "--stack", env.team],
        cwd=cli.cwd, env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while len(env.live()) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert len(env.live()) == 2, "the first up never got as far as renting"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    env.emulator.market.configure(ConfigBody(provision_delay=0))
    # A killed update leaves the DIY backend's lock behind; `pulumi cancel` removes it (the CI recovery step).
    env.ws.cli.run("cancel", "--yes", stack=env.team)
    result = env.ws.up("data-science", policy=False, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    live = env.live()
    assert len(live) == 2
    assert {i.actual_status for i in live} == {"running"}
    env.ws.destroy("data-science")
    assert env.live() == []
