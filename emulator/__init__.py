"""A faithful local emulator of the Vast.ai REST API (the subset in vastai-api.md), over real HTTP.

    from emulator import EmulatorServer
    with EmulatorServer(port=0, seed=1, provision_delay=0) as srv:
        srv.create_account(api_key="...", balance=50)
        ...  # point any client (ours, or the official `vastai` CLI with --url) at srv.url
        srv.market  # the in-memory backend, for assertions

Run it standalone with `python -m emulator --port 8787` (see README.md for the control plane).
"""

from emulator.clock import VirtualClock
from emulator.models import Account, EmulatorConfig, MarketBackend, MarketState
from emulator.server import EmulatorApp, EmulatorServer

__all__ = [
    "Account",
    "EmulatorApp",
    "EmulatorConfig",
    "EmulatorServer",
    "MarketBackend",
    "MarketState",
    "VirtualClock",
]
