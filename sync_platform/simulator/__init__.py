"""The bundled source simulator: the sources' wire formats on loopback, seeded, with faults.

Start it with `SimulatorServer` (tests, demo) or `sync-platform simulator` (a terminal);
drive it over HTTP through its control API under /_sim. Reference:
docs/sources/dealer_feed_api.md.
"""

from sync_platform.simulator.app import create_app
from sync_platform.simulator.dealer import DealerData, DealerSettings
from sync_platform.simulator.faults import DroppedKey, FaultInjector, FaultPlan
from sync_platform.simulator.server import SimulatorServer, serve
from sync_platform.simulator.state import SimulatorSettings, SimulatorState

__all__ = [
    "DealerData",
    "DealerSettings",
    "DroppedKey",
    "FaultInjector",
    "FaultPlan",
    "SimulatorServer",
    "SimulatorSettings",
    "SimulatorState",
    "create_app",
    "serve",
]
