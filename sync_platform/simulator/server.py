"""Run the simulator with uvicorn: in a background thread (tests, demo) or in the foreground
(`sync-platform simulator`)."""

from __future__ import annotations

import threading
import time

import uvicorn

from sync_platform.simulator.app import ResetRequest, SimulatorState, create_app


class SimulatorServer:
    """The simulator on 127.0.0.1, on a free port unless one is given; a context manager."""

    def __init__(self, port: int = 0, seed: int = 42):
        self.state = SimulatorState()
        self.state.reset(ResetRequest(seed=seed))
        config = uvicorn.Config(
            create_app(self.state),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="simulator", daemon=True)
        self.url = ""

    def start(self) -> SimulatorServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the simulator did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(
    host: str = "127.0.0.1", port: int = 8765, seed: int = 42, stock: int = 500, leads: int = 200
) -> None:
    """Serve in the foreground until interrupted."""
    state = SimulatorState()
    state.reset(ResetRequest(seed=seed, dealer={"stock": stock, "leads": leads}))
    uvicorn.run(create_app(state), host=host, port=port, log_level="info")
