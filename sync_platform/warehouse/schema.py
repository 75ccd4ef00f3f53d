"""Create and evolve the warehouse schema.

Platform tables are versioned by Alembic migrations. Entity tables come from YAML config,
so they evolve additively here: a missing table is created, a new optional column is added
(through Alembic's operations), and anything destructive (type change, new required column
on a filled table) stops with a message instead of guessing. Columns that left the config
are kept: the platform never drops data on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import cache

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.schema import CreateIndex, CreateTable

from sync_platform.config.models import EntityConfig
from sync_platform.errors import ConfigurationError
from sync_platform.warehouse import (
    bulk,
    mart_tables,  # noqa: F401 - registers the mart tables
    merge_state,
)
from sync_platform.warehouse.entity_tables import FILLFACTOR, entity_table
from sync_platform.warehouse.platform_tables import metadata as platform_metadata

VERSION_TABLE = "sync_alembic_version"
log = logging.getLogger(__name__)


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", "sync_platform.warehouse:migrations")
    config.attributes["connection"] = connection
    return config


def _type_name(type_: sa.types.TypeEngine, dialect: sa.Dialect) -> str:
    return type_.compile(dialect=dialect).upper().replace("DOUBLE PRECISION", "DOUBLE")


def _set_fillfactor(connection: sa.Connection, table_name: str) -> bool:
    """Give a PostgreSQL entity table created before FILLFACTOR its storage setting (pages
    written from now on keep room for updates). Returns whether it was changed."""
    if not bulk.is_postgres(connection):
        return False
    options = connection.execute(
        sa.text("SELECT reloptions FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table_name}
    ).scalar()
    if f"fillfactor={FILLFACTOR}" in (options or []):
        return False
    quoted = connection.dialect.identifier_preparer.quote(table_name)
    connection.exec_driver_sql(f"ALTER TABLE {quoted} SET (fillfactor = {FILLFACTOR})")
    return True


def ensure_entity_table(connection: sa.Connection, entity: EntityConfig) -> list[str]:
    """Create or additively evolve one entity table; returns what was done."""
    table = entity_table(entity)
    inspector = sa.inspect(connection)
    if not inspector.has_table(table.name):
        table.create(connection)
        merge_state.track(connection, table.name)
        return [f"created table {table.name}"]
    done = []
    if merge_state.track(connection, table.name):
        done.append(f"added the merge-state trigger to {table.name}")
    if _set_fillfactor(connection, table.name):
        done.append(f"set fillfactor {FILLFACTOR} on {table.name}")
    existing = {column["name"]: column for column in inspector.get_columns(table.name)}
    operations = Operations(MigrationContext.configure(connection))
    for column in table.columns:
        current = existing.get(column.name)
        if current is None:
            if not column.nullable and column.server_default is None:
                filled = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                if filled:
                    raise ConfigurationError(
                        f"entity {entity.name!r}: new column {column.name!r} is required but "
                        f"table {table.name} already has {filled} rows",
                        hint="add the column as optional first, sync, then mark it required",
                    )
            operations.add_column(
                table.name,
                sa.Column(
                    column.name, column.type, nullable=True, server_default=column.server_default
                ),
            )
            done.append(f"added column {table.name}.{column.name}")
            continue
        wanted = _type_name(column.type, connection.dialect)
        found = _type_name(current["type"], connection.dialect)
        if wanted != found:
            raise ConfigurationError(
                f"entity {entity.name!r}: column {table.name}.{column.name} is {found} in the "
                f"warehouse but the config declares {wanted}",
                hint="type changes are not applied automatically; migrate the column by hand "
                "(see docs/architecture.md, 'Schema changes') or restore the old type",
            )
    return done


def upgrade_warehouse(engine: sa.Engine, entities: Iterable[EntityConfig]) -> list[str]:
    """Bring the warehouse to the current schema: migrations, then entity tables."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext('sync_platform:ddl'))")
            )
        command.upgrade(_alembic_config(connection), "head")
        done = [f"platform tables at migration {current_revision(connection)}"]
        for entity in entities:
            done.extend(ensure_entity_table(connection, entity))
    for line in done:
        log.info(line)
    return done


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()


def postgres_ddl(entities: Iterable[EntityConfig]) -> str:
    """The Postgres DDL of every table, as `sql/postgres/schema.sql` holds it for DBAs."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    entities = list(entities)
    entity_metadata = sa.MetaData()
    tables = list(platform_metadata.sorted_tables)
    tables += [entity_table(entity, entity_metadata) for entity in entities]
    parts = [
        "-- Generated by `sync-platform db ddl`; kept true by sync_platform_tests/"
        "test_schema.py.\n-- Platform tables come from the Alembic migrations, entity tables "
        "from config/sources/*.yaml.\n"
    ]
    for table in tables:
        parts.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";\n")
        for index in sorted(table.indexes, key=lambda index: index.name or ""):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";\n")
    parts.append(merge_state.STORAGE_DDL + ";\n")
    parts.append(merge_state.FORGET_FUNCTION + ";\n")
    for entity in entities:
        quoted = dialect.identifier_preparer.quote(entity.table)
        parts.append(merge_state.trigger_ddl(quoted) + ";\n")
        parts.append(f"INSERT INTO sync_merge_state (table_name) VALUES ('{entity.table}');\n")
    return "\n".join(parts)


@cache
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "sync_platform.warehouse:migrations")
    return ScriptDirectory.from_config(config).get_current_head()
