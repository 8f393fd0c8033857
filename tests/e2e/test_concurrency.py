"""Two `pulumi up` of one stack at once (same project, same state backend): the backend's lock refuses one,
the other converges, and nothing is rented twice.

Why each `up` gets its own Vast.ai account (a key in VAST_API_KEY, the stack holding none): the emulator's
request log records the account of every call, so each call is attributable to the process that made it. With
one shared key a second `up` that slipped past the lock would not even show as a double rent: its creates
would adopt the first one's instances through their ownership tags. With two keys it would rent its own.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from emulator.bodies import ConfigBody
from tests.e2e.conftest import TeamEnv
from tests.e2e.test_fleet import ONE_NOTEBOOK

pytestmark = pytest.mark.engine

TEAM = "data-science"
MUTATING = ("create", "manage", "destroy")
LOCKED = ("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or "
          "delete the lock file with `pulumi cancel`.")


def test_a_second_up_is_refused_by_the_lock_and_nothing_is_rented_twice(
        team_env: Callable[[str], TeamEnv]) -> None:
    env = team_env(TEAM)
    declared = ONE_NOTEBOOK["notebook"]["count"]
    env.ws.set_fleet(TEAM, ONE_NOTEBOOK)
    env.ws.cli.run("config", "rm", "vastai:apiKey", stack=TEAM)  # each process brings its own key, below
    second_key = f"{TEAM}-{secrets.token_hex(16)}"
    second_account = env.emulator.create_account(api_key=second_key, balance=1000, username=f"{TEAM}-second")
    # Instances take seconds to boot, so the first `up` is still waiting for them when the second starts.
    env.emulator.market.configure(ConfigBody(provision_delay=6))
    env.emulator.market.requests.clear()

    cli = env.ws.cli

    def up(key: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(cli.engine.pulumi), "up", "--yes", "--skip-preview", "--non-interactive", "--stack", TEAM],
            cwd=cli.cwd, env={**cli.env, "VAST_API_KEY": key}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)

    # The second starts a few hundred ms after the first, and not before the first's lock is on disk: two
    # processes writing their lock files in the same instant may both back off (the file backend's lock is
    # write-then-list), which is safe but not the case under test.
    locks = Path(cli.env["PULUMI_BACKEND_URL"].removeprefix("file://")) / ".pulumi" / "locks"
    started = time.monotonic()
    first = up(env.api_key)
    while time.monotonic() - started < 0.3 or not list(locks.rglob("*.json")):
        assert first.poll() is None and time.monotonic() - started < 120, "the first up never took the lock"
        time.sleep(0.05)
    gap = time.monotonic() - started
    second = up(second_key)
    try:
        second_out, second_err = second.communicate(timeout=300)
        first_still_running = first.poll() is None
        first_out, first_err = first.communicate(timeout=600)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    elapsed = time.monotonic() - started
    for text in (first_out, first_err, second_out, second_err):
        assert env.api_key not in text and second_key not in text

    # The second is refused by the lock the first holds (the lock file names the first's pid) ...
    assert first_still_running, "the first up finished before the second was refused: no overlap was tested"
    assert second.returncode == 1, second_out[-2000:] + second_err[-2000:]
    refusal = second_out + second_err
    assert LOCKED in refusal
    holder = re.search(r"locks/organization/vastguard/data-science/[0-9a-f-]+\.json\S*: created by \S+ "
                       r"\(pid (\d+)\)", refusal)
    assert holder is not None and int(holder.group(1)) == first.pid, refusal[-2000:]
    # ... and the first converges.
    assert first.returncode == 0, first_out[-3000:] + first_err[-3000:]

    # Exactly the declared instances, in the first's account; none in the second's.
    live = env.live()
    assert len(live) == declared
    assert {i.actual_status for i in live} == {"running"}
    assert len({i.label for i in live}) == declared
    assert env.emulator.market.all_instances(second_account)[0] == []

    # The request log agrees: one accepted rent per instance, all by the first; the refused `up` made no
    # call at all (the lock is taken before the program or the provider starts).
    records = env.emulator.market.requests.records()
    rents = [r for r in records if r.operation == "create" and r.status == 200]
    assert len(rents) == declared
    assert {r.account_id for r in rents} == {env.account.id}
    assert [r for r in records if r.account_id == second_account.id] == []
    assert [r for r in records if r.operation in MUTATING and r.account_id != env.account.id] == []
    assert elapsed < 300
    print(f"second up started {gap:.2f}s after the first; refused; first converged after {elapsed:.1f}s")

    # The first released its lock: later commands run, and find the stack and Vast in agreement.
    key = {"VAST_API_KEY": env.api_key}
    again = cli.run("preview", "--expect-no-changes", stack=TEAM, check=False, extra_env=key)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    cli.run("destroy", "--yes", "--skip-preview", stack=TEAM, extra_env=key)
    assert env.live() == []
