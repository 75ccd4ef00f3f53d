"""Everything one simulator serves, in one object: what a reset rebuilds from a seed.

A source added to the simulator adds its settings to `SimulatorSettings` and its data to
`SimulatorState`; the fault injector and request statistics are shared by all sources.
"""

from __future__ import annotations

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from sync_platform_simulator.dealer import DealerData, DealerSettings
from sync_platform_simulator.faults import FaultInjector, RequestStats
from sync_platform_simulator.ga4 import GA4Data, GA4Settings
from sync_platform_simulator.google_oauth import GoogleOAuth, GoogleOAuthSettings
from sync_platform_simulator.legacy_erp import ErpData, ErpSettings
from sync_platform_simulator.n8n import N8nData, N8nSettings
from sync_platform_simulator.sheets import SheetsData, SheetsSettings


class SimulatorSettings(BaseModel):
    """The body of `POST /_sim/reset`: every field optional, the defaults documented."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 42
    dealer: DealerSettings = Field(default_factory=DealerSettings)
    erp: ErpSettings = Field(default_factory=ErpSettings)
    sheets: SheetsSettings = Field(default_factory=SheetsSettings)
    google_oauth: GoogleOAuthSettings = Field(default_factory=GoogleOAuthSettings)
    ga4: GA4Settings = Field(default_factory=GA4Settings)
    n8n: N8nSettings = Field(default_factory=N8nSettings)


class SimulatorState:
    """The data, fault plan and statistics behind one running simulator.

    The injector and statistics objects live as long as the state (a reset clears them in
    place), so the middleware can hold on to them.
    """

    def __init__(self, settings: SimulatorSettings | None = None):
        settings = settings or SimulatorSettings()
        self.faults = FaultInjector(settings.seed)
        self.stats = RequestStats()
        self.reset(settings)

    def reset(self, settings: SimulatorSettings) -> None:
        """Regenerate every source's data from the seed; clear faults and statistics."""
        self.settings = settings.model_copy(deep=True)
        self.seed = settings.seed
        self.dealer = DealerData(settings.seed, settings.dealer)
        self.erp = ErpData(settings.seed, settings.erp)
        self.sheets = SheetsData(settings.seed, settings.sheets)
        self.google_oauth = GoogleOAuth(settings.seed, settings.google_oauth)
        self.ga4 = GA4Data(settings.seed, settings.ga4)
        self.n8n = N8nData(settings.seed, settings.n8n)
        self.faults.reset(settings.seed)
        self.stats.clear()


def simulator_state(request: Request) -> SimulatorState:
    """FastAPI dependency: the state of the simulator serving this request."""
    return request.app.state.simulator
