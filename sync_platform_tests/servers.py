"""The webhook receiver served on a background thread, as the tests run it.

The product keeps no background server of its own: this serves the receiver's app (what
`sync-platform receiver` serves) with the simulator package's `BackgroundServer`, on a free
loopback port, with the production keep-alive.
"""

from __future__ import annotations

from sync_platform.receiver import ReceiverSettings, create_app
from sync_platform.receiver.server import server_options
from sync_platform_simulator.background_server import BackgroundServer


def receiver_server(settings: ReceiverSettings) -> BackgroundServer:
    """`with receiver_server(settings) as receiver: receiver.url`. `.app` is the live FastAPI
    app (its counters are `app.state.receiver.metrics`)."""
    return BackgroundServer(
        create_app(settings),
        name="receiver",
        timeout_graceful_shutdown=1,
        **server_options(settings),
    )
