"""The Pulumi programs: a team's fleet (`fleet_program`) and the platform's access (`platform_program`).

`main()` picks one by the stack's config: a stack with `vastguard:platform` is the platform stack; any other is a
team's. A stack declaring both is refused, so a team cannot slip access objects into its fleet stack.
"""

from __future__ import annotations

from typing import Any

import pulumi


def main() -> Any:
    config = pulumi.Config("vastguard")
    platform = config.get_object("platform")
    if platform is not None and (config.get_object("fleet") is not None or config.get("team") is not None):
        raise pulumi.RunError(
            f"stack {pulumi.get_stack()!r} declares both vastguard:platform and a team's fleet (vastguard:team / "
            "vastguard:fleet): the platform stack declares teams' access, a team's stack its fleet; split them")
    if platform is not None:
        from program.platform_program import run as run_platform

        return run_platform()
    from program.fleet_program import run as run_fleet

    return run_fleet()
