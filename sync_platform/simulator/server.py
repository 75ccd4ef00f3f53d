"""Run the simulator with uvicorn: on a background thread (tests, demo) or in the foreground
(`sync-platform simulator`)."""

from __future__ import annotations

import threading
import time

import uvicorn

from sync_platform.simulator.app import create_app
from sync_platform.simulator.dealer import DEFAULT_API_KEY, DealerSettings
from sync_platform.simulator.state import SimulatorSettings, SimulatorState

STARTUP_TIMEOUT_SECONDS = 30
# A request still stalled by an injected hang when the server stops is cancelled after this.
SHUTDOWN_GRACE_SECONDS = 1


class SimulatorServer:
    """The simulator on a background thread, on a free loopback port unless one is given.

    Use it as a context manager (`with SimulatorServer(seed=7) as sim: sim.url`), or call
    `start()` and `stop()`. `state` is the live `SimulatorState`, there for a test to read.
    """

    def __init__(
        self,
        *,
        seed: int = 42,
        dealer: DealerSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.state = SimulatorState(SimulatorSettings(seed=seed, dealer=dealer or DealerSettings()))
        config = uvicorn.Config(
            create_app(self.state),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        self._host = host
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="simulator", daemon=True)
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (the dealer API is under /dealer)."""
        if self._url is None:
            raise RuntimeError("the simulator is not running: call start() or use `with`")
        return self._url

    def start(self) -> SimulatorServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the simulator did not start (is the port already in use?)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the simulator did not start in {STARTUP_TIMEOUT_SECONDS} s")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self._url = f"http://{self._host}:{port}"
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread; safe to call twice."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=STARTUP_TIMEOUT_SECONDS)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


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
