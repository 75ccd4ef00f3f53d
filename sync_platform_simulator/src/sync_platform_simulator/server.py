"""Run the simulator with uvicorn: on a background thread (tests, demo) or in the foreground
(`sync-platform-simulator serve`)."""

from __future__ import annotations

import uvicorn

from sync_platform_simulator.app import create_app
from sync_platform_simulator.background_server import BackgroundServer
from sync_platform_simulator.dealer import DEFAULT_API_KEY, DealerSettings
from sync_platform_simulator.state import SimulatorSettings, SimulatorState

# A request still stalled by an injected hang when the server stops is cancelled after this.
SHUTDOWN_GRACE_SECONDS = 1


class SimulatorServer(BackgroundServer):
    """The simulator on a background thread, on a free loopback port unless one is given.

    Use it as a context manager (`with SimulatorServer(seed=7) as sim: sim.url`), or call
    `start()` and `stop()`. `state` is the live `SimulatorState`, there for a test to read.
    """

    name = "simulator"

    def __init__(
        self,
        *,
        seed: int = 42,
        dealer: DealerSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.state = SimulatorState(SimulatorSettings(seed=seed, dealer=dealer or DealerSettings()))
        super().__init__(
            create_app(self.state),
            host=host,
            port=port,
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    seed: int = 42,
    stock: int = 500,
    leads: int = 200,
    api_key: str = DEFAULT_API_KEY,
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C)."""
    dealer = DealerSettings(stock=stock, leads=leads, api_key=api_key)
    state = SimulatorState(SimulatorSettings(seed=seed, dealer=dealer))
    uvicorn.run(create_app(state), host=host, port=port, log_level="info", lifespan="off")
