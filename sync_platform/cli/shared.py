"""What every command group of the CLI uses: the warehouse, and the one way an error ends a
command (a line on stderr, exit code 2; never a traceback)."""

from __future__ import annotations

import sqlalchemy as sa
import typer

from sync_platform import settings
from sync_platform.warehouse.connection import (
    create_warehouse_engine,
    lost_connection,
    unreachable,
)


def warehouse_engine() -> sa.Engine:
    return create_warehouse_engine(settings.warehouse_url())


def fail(exc: Exception) -> None:
    if lost_connection(exc):
        exc = unreachable(settings.warehouse_url(), exc)
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)
