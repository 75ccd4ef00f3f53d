"""Run the receiver with uvicorn in the foreground (`sync-platform receiver`, one or more worker
processes). Tests and the demo serve `create_app(settings)` on a background thread with the
same keep-alive.

uvicorn limits neither the body size nor how long a body or the headers may take: the app
limits the body (app.py), the protocol the headers (protocol.py). What neither can do —
connection floods, TLS — belongs to a reverse proxy in front (docs/sources/n8n.md, "Running
it in production").
"""

from __future__ import annotations

import os
import shutil
import tempfile

import uvicorn

from sync_platform.receiver.metrics import METRICS_DIR_ENV
from sync_platform.receiver.protocol import HeaderDeadlineFromEnvironment, with_header_deadline
from sync_platform.receiver.settings import ReceiverSettings

KEEP_ALIVE_SECONDS = 75  # longer than the idle timeout of usual proxies and n8n's agent
# On SIGTERM, requests in flight get this long to commit and answer before workers stop.
SHUTDOWN_GRACE_SECONDS = 15


def server_options(settings: ReceiverSettings) -> dict[str, object]:
    """The uvicorn options the receiver runs with, wherever it runs (here, tests, the demo)."""
    return {
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "http": with_header_deadline(settings.header_timeout_seconds),
    }


def serve(
    host: str = "127.0.0.1", port: int = 8780, workers: int = 1, log_level: str = "info"
) -> None:
    """Serve in the foreground until interrupted; settings from the environment.

    Several workers share the port (uvicorn's supervisor); their counters are summed through
    a temporary directory, so /metrics answers for all of them.
    """
    receiver = ReceiverSettings.from_env()  # fail here, with the config error, not per worker
    metrics_dir = tempfile.mkdtemp(prefix="sync_platform_receiver_") if workers > 1 else None
    if metrics_dir:
        os.environ[METRICS_DIR_ENV] = metrics_dir
    try:
        uvicorn.run(
            "sync_platform.receiver.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=log_level == "debug",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            # The same options as everywhere, with the header deadline in a class that worker
            # processes can be handed (the settings above were read from the same environment).
            **{**server_options(receiver), "http": HeaderDeadlineFromEnvironment},
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
