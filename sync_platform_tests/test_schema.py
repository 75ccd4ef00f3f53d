"""The schema a DBA reads (sql/postgres/schema.sql) is the schema the migrations create."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sync_platform.errors import ConfigurationError
from sync_platform.warehouse import mart_tables  # noqa: F401 - part of the metadata
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.platform_tables import metadata as platform_metadata
from sync_platform.warehouse.schema import (
    ensure_entity_table,
    head_revision,
    postgres_ddl,
    upgrade_warehouse,
)
from sync_platform_tests.conftest import all_entities
from sync_platform_tests.records import STOCK

SCHEMA_SQL = Path(__file__).resolve().parent.parent / "sql" / "postgres" / "schema.sql"


def describe(engine: sa.Engine) -> dict:
    """Everything about the schema that matters, as comparable plain data."""
    inspector = sa.inspect(engine)
    schema = {}
    for table in sorted(inspector.get_table_names()):
        if table == "sync_alembic_version":
            continue
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], str(fk["options"]))
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), i["unique"], str(i.get("dialect_options")))
                for i in inspector.get_indexes(table)
            ),
            "checks": sorted(
                (c["name"], c["sqltext"]) for c in inspector.get_check_constraints(table)
            ),
        }
    return schema


def test_schema_sql_is_what_the_generator_prints():
    assert SCHEMA_SQL.read_text() == postgres_ddl(all_entities()), (
        "sql/postgres/schema.sql is stale: run `sync-platform db ddl --write`"
    )


def test_schema_sql_creates_exactly_what_the_migrations_create(pg_database, empty_pg_database):
    from_sql = create_warehouse_engine(empty_pg_database)
    with from_sql.begin() as connection:
        connection.exec_driver_sql(SCHEMA_SQL.read_text())
    migrated = create_warehouse_engine(pg_database)
    try:
        expected, actual = describe(migrated), describe(from_sql)
        assert set(expected) == set(actual)
        for table in expected:
            assert actual[table] == expected[table], table
    finally:
        from_sql.dispose()
        migrated.dispose()


def test_migrations_match_the_table_definitions_the_code_uses(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = [
            diff
            for diff in compare_metadata(context, platform_metadata)
            if not (diff[0] == "remove_table" and diff[1].name not in platform_metadata.tables)
        ]
    assert diffs == []


def test_upgrade_is_idempotent_and_adds_new_optional_columns(engine):
    assert upgrade_warehouse(engine, all_entities()) == [
        f"platform tables at migration {head_revision()}"
    ]
    fields = dict(STOCK.fields) | {
        "warranty": STOCK.fields["colour"].model_copy(update={"source": "Warranty"})
    }
    grown = STOCK.model_copy(update={"fields": fields})
    with engine.begin() as connection:
        assert ensure_entity_table(connection, grown) == ["added column dealer_stock.warranty"]
    assert "warranty" in {c["name"] for c in sa.inspect(engine).get_columns("dealer_stock")}


def test_a_type_change_is_refused_with_a_message(engine):
    fields = dict(STOCK.fields) | {"year": STOCK.fields["make"]}  # integer → string
    changed = STOCK.model_copy(update={"fields": fields})
    with engine.begin() as connection:
        try:
            ensure_entity_table(connection, changed)
        except ConfigurationError as exc:
            assert "dealer_stock.year" in str(exc) and "What to do" in str(exc)
        else:
            raise AssertionError("a type change must be refused")


def test_a_warehouse_at_the_first_release_upgrades_to_head(tmp_path, empty_pg_database):
    from alembic import command

    from sync_platform.warehouse.schema import _alembic_config, current_revision

    for url in (f"sqlite:///{tmp_path / 'old.db'}", empty_pg_database):
        engine = create_warehouse_engine(url)
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "0001")
            assert current_revision(connection) == "0001"
        upgrade_warehouse(engine, all_entities())
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
            assert "sync_alerts" in sa.inspect(connection).get_table_names()
        engine.dispose()
