"""An ASGI app served by uvicorn on a background thread, on a free loopback port unless one is
given: the simulator itself, and any app a test or demo serves beside it (the platform's
webhook receiver)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Self

import uvicorn

STARTUP_TIMEOUT_SECONDS = 30


class BackgroundServer:
    """`with BackgroundServer(app) as server: server.url`, or `start()` / `stop()`.

    `app` is the live ASGI app; `name` names the thread and the errors; other keyword
    arguments go to `uvicorn.Config` (e.g. `timeout_keep_alive`, `timeout_graceful_shutdown`).
    """

    name = "server"

    def __init__(
        self,
        app: Any,
        *,
        name: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ):
        if name is not None:
            self.name = name
        self.app = app
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, **options
        )
        self._host = host
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=self.name, daemon=True)
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        if self._url is None:
            raise RuntimeError(f"the {self.name} is not running: call start() or use `with`")
        return self._url

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the {self.name} did not start (is the port already in use?)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.name} did not start in {STARTUP_TIMEOUT_SECONDS} s")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self._url = f"http://{self._host}:{port}"
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread; safe to call twice."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=STARTUP_TIMEOUT_SECONDS)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def free_port() -> int:
    """A loopback port free at this moment, for a process that cannot take port 0 itself."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, seconds: float, what: str = "the server") -> None:
    """Until something listens on the loopback `port`; an AssertionError naming `what` after
    `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not listen on {port} within {seconds} s")
