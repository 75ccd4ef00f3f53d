"""Alembic environment: always run on a connection handed in by `warehouse.schema`."""

from alembic import context

from sync_platform.warehouse import mart_tables  # noqa: F401 - registers the mart tables
from sync_platform.warehouse.platform_tables import metadata
from sync_platform.warehouse.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
