"""The warehouse as a Dagster resource: one engine per URL per process."""

from __future__ import annotations

from functools import cache

import dagster as dg
import sqlalchemy as sa

from sync_platform import settings
from sync_platform.errors import ConfigurationError
from sync_platform.warehouse.connection import create_warehouse_engine, redacted
from sync_platform.warehouse.schema import VERSION_TABLE, current_revision, head_revision


@cache
def _engine(url: str) -> sa.Engine:
    return create_warehouse_engine(url)


class WarehouseResource(dg.ConfigurableResource):
    """Where synced data and the platform's own tables live (SQLite file or PostgreSQL).

    The URL comes from SYNC_PLATFORM_WAREHOUSE_URL through `EnvVar` (so a password in it
    never shows in the UI); without it, the embedded SQLite file is used.
    """

    url: str

    def get_engine(self) -> sa.Engine:
        return _engine(self.url)

    def ready_engine(self) -> sa.Engine:
        """The engine, after checking the schema is migrated (a clear error if not)."""
        engine = self.get_engine()
        try:
            with engine.connect() as connection:
                revision = current_revision(connection)
        except sa.exc.OperationalError as exc:
            raise ConfigurationError(
                f"cannot reach the warehouse at {redacted(self.url)}: {exc.orig}",
                hint=f"check {settings.WAREHOUSE_URL_ENV} and that the database is up",
            ) from None
        if revision != head_revision():
            raise ConfigurationError(
                f"warehouse at {redacted(self.url)} is at schema revision {revision or 'none'} "
                f"(table {VERSION_TABLE}); this code needs {head_revision()}",
                hint="run `sync-platform db upgrade` against it",
            )
        return engine


def warehouse_resource() -> WarehouseResource:
    import os

    if os.environ.get(settings.WAREHOUSE_URL_ENV):
        return WarehouseResource(url=dg.EnvVar(settings.WAREHOUSE_URL_ENV))
    return WarehouseResource(url=settings.default_warehouse_url())
