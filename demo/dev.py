"""`python -m demo.dev` (`make dev`): the Dagster UI and daemon on the embedded default, with
the sources the demo synced served by the simulator and the demo's settings, so the UI shows
what an operator would see and nothing fails for want of a setting.

The simulator starts from the demo's seed and sizes, without the faults the demo planted
(and without its later changes to the sources: the first syncs bring the warehouse back in
step with it). Stop it with Ctrl-C: the simulator stops with the UI.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import typer

from demo.__main__ import demo_environment, reset_sources
from sync_platform import settings
from sync_platform.config import all_source_configs
from sync_platform.warehouse.connection import create_warehouse_engine, redacted
from sync_platform.warehouse.schema import upgrade_warehouse
from sync_platform_simulator.server import SimulatorServer

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def main(
    host: str = typer.Option("127.0.0.1", help="interface the Dagster UI listens on"),
    port: int = typer.Option(3000, help="port of the Dagster UI"),
    stock: int = typer.Option(300, help="vehicles in the simulated dealer feed (as the demo)"),
    leads: int = typer.Option(120, help="leads in the simulated dealer feed (as the demo)"),
    seed: int = typer.Option(42, help="simulator seed (the demo's)"),
) -> None:
    """Serve the Dagster UI and daemon against the simulator, with the demo's settings."""
    url = settings.warehouse_url()
    home = settings.platform_home()
    home.mkdir(parents=True, exist_ok=True)
    upgrade_warehouse(
        create_warehouse_engine(url),
        [entity for source in all_source_configs() for entity in source.entities.values()],
    )
    with SimulatorServer(seed=seed) as simulator:
        with httpx.Client(base_url=simulator.url) as control:
            reset_sources(control, seed, stock, leads)
        env = demo_environment(url, simulator.url, home)
        typer.echo(
            f"warehouse {redacted(url)}; source simulator {simulator.url}; "
            f"Dagster UI on http://{host}:{port} (Ctrl-C stops both)"
        )
        command = [str(BIN / "dagster"), "dev", "-w", str(REPO / "workspace.yaml")]
        # Dagster handles SIGTERM as it handles SIGINT; started from a background shell, which
        # ignores SIGINT for its children, dagster dev would then ignore SIGTERM as well.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        dev = subprocess.Popen([*command, "-h", host, "-p", str(port)], env=env, cwd=REPO)
        # A SIGTERM (a supervisor, `timeout`) reaches this process alone: pass it on, and wait
        # while dagster dev stops its UI, daemon and code server.
        signal.signal(signal.SIGTERM, lambda *_: dev.terminate())
        while True:
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: dagster dev stops too
                dev.wait()
                break


if __name__ == "__main__":
    typer.run(main)
