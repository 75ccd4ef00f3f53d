"""Post-sync verification: does the warehouse hold every key the source has?

Keys the source lists but the warehouse lacks (active) become open gaps; open gaps whose
key is present again (or, after a full snapshot, no longer listed) are closed with the run
that fixed them; gaps out of resync attempts
become unrecoverable with an alert (engine/gaps.py). Quarantined and held keys are known
failures with their own records, not gaps.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import sqlalchemy as sa

from sync_platform.config.models import EntityConfig
from sync_platform.engine import gaps
from sync_platform.engine.mapping import record_key_expr
from sync_platform.engine.ports import Verification
from sync_platform.engine.scope import scope_conditions
from sync_platform.warehouse import bulk
from sync_platform.warehouse.connection import READ_ONLY
from sync_platform.warehouse.entity_tables import DELETED_AT


def active_keys(
    connection: sa.Connection, table: sa.Table, entity: EntityConfig, scope: dict | None = None
) -> pl.Series:
    query = sa.select(
        *(sa.cast(table.c[column], sa.Text).label(column) for column in entity.key)
    ).where(table.c[DELETED_AT].is_(None))
    query = query.where(*scope_conditions(table, scope))
    frame = bulk.select_frame(connection, query, {column: pl.String for column in entity.key})
    return frame.select(record_key_expr(entity.key)).to_series()


def verify_keys(
    engine: sa.Engine,
    table: sa.Table,
    entity: EntityConfig,
    *,
    source: str,
    expected_keys: pl.Series,
    sync_run_id: int,
    now: datetime,
    max_attempts: int,
    scope: dict | None = None,
    complete: bool = True,
    source_keys: pl.Series | None = None,
) -> Verification:
    """Compare expected keys with the warehouse and record gaps.

    `complete` says the expected keys are the source's whole key set (a full snapshot), so
    warehouse keys beyond it are counted as unexpected too. `source_keys` are all the keys
    the source has, when this sync read them all (a snapshot's listing, a resync's whole
    read): a tracked gap whose key is not among them is settled, the record gone, not lost.
    """
    with engine.connect().execution_options(**READ_ONLY) as connection, connection.begin():
        present = active_keys(connection, table, entity, scope).alias("key").to_frame()
    expected = expected_keys.drop_nulls().unique().alias("key").to_frame()
    missing = sorted(expected.join(present, on="key", how="anti").get_column("key").to_list())
    unexpected = (
        sorted(present.join(expected, on="key", how="anti").get_column("key").to_list())
        if complete
        else []
    )
    with engine.begin() as connection:
        known = gaps.tracked_keys(connection, source, entity.name)
        settled = present.filter(pl.col("key").is_in(list(known))).get_column("key").to_list()
        if source_keys is not None:
            listed = set(source_keys.drop_nulls().to_list())
            settled += [key for key in known if key not in listed]
        opened, closed = gaps.record_gaps(
            connection,
            source=source,
            entity=entity.name,
            missing=missing,
            settled=settled,
            sync_run_id=sync_run_id,
            now=now,
        )
        unrecoverable = gaps.give_up_exhausted(
            connection,
            source=source,
            entity=entity.name,
            missing=missing,
            max_attempts=max_attempts,
            now=now,
        )
        gaps.resolve_alert_when_nothing_is_lost(
            connection, source=source, entity=entity.name, now=now
        )
        lost = set(gaps.lost_keys(connection, source, entity.name))
    return Verification(
        status="gaps" if missing else "passed",
        source_count=expected.height,
        warehouse_count=present.height,
        missing_keys=missing,
        unexpected_keys=unexpected,
        gaps_opened=opened,
        gaps_resolved=closed,
        unrecoverable=unrecoverable,
        lost_keys=[key for key in missing if key in lost],
    )
