"""Read an entity's warehouse rows back as typed polars frames (for checks and reports).

Values leave the database as text and are typed by the same rules the sync used, so a
frame read back compares exactly with a frame that was written.
"""

from __future__ import annotations

import polars as pl
import sqlalchemy as sa

from sync_platform.config.models import EntityConfig
from sync_platform.engine.mapping import cast_text_columns
from sync_platform.engine.scope import scope_conditions
from sync_platform.warehouse import bulk
from sync_platform.warehouse.entity_tables import DELETED_AT, entity_table


def read_active_rows(
    connection: sa.Connection, entity: EntityConfig, scope: dict | None = None
) -> pl.DataFrame:
    table = entity_table(entity)
    query = sa.select(
        *(sa.cast(table.c[column], sa.Text).label(column) for column in entity.columns)
    ).where(table.c[DELETED_AT].is_(None))
    query = query.where(*scope_conditions(table, scope))
    text = bulk.select_frame(connection, query, {column: pl.String for column in entity.columns})
    return cast_text_columns(text, entity.fields)
