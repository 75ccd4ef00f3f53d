"""What every command group of the CLI uses: the warehouse, and the one way an error ends a
command (a line on stderr, exit code 2; never a traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
import typer

from sync_platform import settings
from sync_platform.errors import ConfigurationError, SyncError
from sync_platform.warehouse.connection import (
    create_warehouse_engine,
    lost_connection,
    redacted,
    unreachable,
)


def warehouse_engine() -> sa.Engine:
    return create_warehouse_engine(settings.warehouse_url())


def fail(exc: Exception) -> None:
    if lost_connection(exc):
        exc = unreachable(settings.warehouse_url(), exc)
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@contextmanager
def reported() -> Iterator[None]:
    """A platform, database or file error as one line on stderr (exit 2), not a traceback."""
    try:
        yield
    except (SyncError, sa.exc.SQLAlchemyError, OSError) as exc:
        fail(exc)


def migrated_warehouse_engine() -> sa.Engine:
    """The warehouse, once it is known to have this code's tables (a clear error if not)."""
    from sync_platform.warehouse.schema import current_revision, head_revision

    engine = warehouse_engine()
    with engine.connect() as connection:
        revision = current_revision(connection)
    if revision != head_revision():
        raise ConfigurationError(
            f"the warehouse {redacted(settings.warehouse_url())} is at schema revision "
            f"{revision or 'none'}; this code needs {head_revision()}",
            hint="run `sync-platform db upgrade`",
        )
    return engine
