"""`sync-platform-simulator`: serve the source simulator from a terminal."""

from __future__ import annotations

import typer

app = typer.Typer(help="The source simulator of sync-platform.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Keeps `serve` a subcommand (typer folds a lone command into the app otherwise)."""


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8765, help="port to listen on"),
    seed: int = typer.Option(42, help="same seed, same data"),
    stock: int = typer.Option(500, help="vehicles in the dealer feed"),
    leads: int = typer.Option(200, help="leads in the dealer feed"),
) -> None:
    """Serve the source simulator (dealer API under /dealer, control API under /_sim)."""
    from sync_platform_simulator.server import serve

    typer.echo(f"source simulator on http://{host}:{port} (dealer API: /dealer, control: /_sim)")
    serve(host=host, port=port, seed=seed, stock=stock, leads=leads)
