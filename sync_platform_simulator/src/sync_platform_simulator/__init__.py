"""The source simulator: the sources' wire formats on loopback, seeded, with faults.

Start it with `SimulatorServer` (tests, demo) or `sync-platform-simulator serve` (a terminal);
drive it over HTTP through its control API under /_sim. Reference:
docs/sources/dealer_feed_api.md.
"""

from sync_platform_simulator.app import create_app
from sync_platform_simulator.background_server import BackgroundServer
from sync_platform_simulator.dealer import DealerData, DealerSettings
from sync_platform_simulator.faults import DroppedKey, FaultInjector, FaultKind, FaultPlan
from sync_platform_simulator.ga4 import GA4Data, GA4Property, GA4Settings
from sync_platform_simulator.google_oauth import GoogleOAuth, GoogleOAuthSettings
from sync_platform_simulator.legacy_erp import ErpData, ErpSettings
from sync_platform_simulator.n8n import N8nData, N8nSettings, N8nWorkflow, SendReport, SendRequest
from sync_platform_simulator.server import SimulatorServer, serve
from sync_platform_simulator.sheets import SheetsData, SheetsSettings
from sync_platform_simulator.state import SimulatorSettings, SimulatorState

__all__ = [
    "BackgroundServer",
    "DealerData",
    "DealerSettings",
    "DroppedKey",
    "ErpData",
    "ErpSettings",
    "FaultInjector",
    "FaultKind",
    "FaultPlan",
    "GA4Data",
    "GA4Property",
    "GA4Settings",
    "GoogleOAuth",
    "GoogleOAuthSettings",
    "N8nData",
    "N8nSettings",
    "N8nWorkflow",
    "SendReport",
    "SendRequest",
    "SheetsData",
    "SheetsSettings",
    "SimulatorServer",
    "SimulatorSettings",
    "SimulatorState",
    "create_app",
    "serve",
]
