"""Leases, referential order, conflicts, targeted resync and integrity alerts, on SQLite
and PostgreSQL, through the engine's entry point."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from sync_platform.engine.merge import merge_snapshot
from sync_platform.engine.pipeline import run_entity_sync
from sync_platform.engine.ports import EntitySource, SyncRequest
from sync_platform.errors import SyncAlreadyRunningError
from sync_platform.runtime_config import set_setting
from sync_platform.warehouse.entity_tables import entity_table
from sync_platform.warehouse.platform_tables import (
    sync_alerts,
    sync_conflicts,
    sync_gaps,
    sync_held_records,
)
from sync_platform_tests.records import (
    LEGACY,
    PRODUCTS,
    STOCK,
    VARIANTS,
    delta_source,
    fleet,
    in_memory_source,
    product,
    variant,
    vehicle,
)


def rows(engine, sql: str) -> list:
    with engine.connect() as connection:
        return connection.execute(sa.text(sql)).all()


def legacy(engine, entity, records, **kwargs):
    request = SyncRequest(
        "legacy_erp", entity, references=LEGACY.reference_targets(entity.name), **kwargs
    )
    return run_entity_sync(engine, request, delta_source(records))


# --- one sync per entity at a time ---------------------------------------------------------


def test_a_second_sync_of_the_same_entity_is_refused_with_the_first_ones_status(engine):
    started, release = threading.Event(), threading.Event()

    def slow_pages(_since):
        yield [vehicle(i) for i in range(50)]
        started.set()
        release.wait(30)
        yield [vehicle(i) for i in range(50, 60)]

    first = threading.Thread(
        target=run_entity_sync,
        args=(engine, SyncRequest("dealer_feed", STOCK), EntitySource(pages=slow_pages)),
    )
    first.start()
    assert started.wait(30)
    try:
        with pytest.raises(SyncAlreadyRunningError) as refused:
            run_entity_sync(engine, SyncRequest("dealer_feed", STOCK), in_memory_source(fleet(5)))
        assert "dealer_feed.dealer_stock is already syncing" in str(refused.value)
        assert "manual sync #1" in str(refused.value)
    finally:
        release.set()
        first.join()
    # Other entities are not affected, and once the first is done the entity is free again.
    report = run_entity_sync(engine, SyncRequest("dealer_feed", STOCK), in_memory_source(fleet(60)))
    assert report.status == "succeeded" and report.merge.unchanged == 60
    assert rows(engine, "SELECT count(*) FROM sync_runs")[0][0] == 2  # the refusal left no run


# --- referential order -----------------------------------------------------------------------


def test_a_variant_before_its_parent_is_held_then_loaded_when_the_parent_arrives(engine):
    early = legacy(engine, VARIANTS, [variant("V1", "P1"), variant("V2", "P2")])
    assert (early.held, early.merge.inserted, early.status) == (2, 0, "warning")
    assert rows(engine, "SELECT count(*) FROM legacy_variants")[0][0] == 0  # nothing dangling
    waiting = rows(engine, "SELECT record_key, reason FROM sync_held_records ORDER BY record_key")
    assert [key for key, _ in waiting] == ["V1", "V2"]
    assert "parent legacy_products.product_code = 'P1' is not in the warehouse yet" in waiting[0][1]
    assert early.verification.gap_count == 0  # held is known and recorded, not a gap

    legacy(engine, PRODUCTS, [product("P1")])
    # No new variant data at all: the held rows are retried on their own.
    later = legacy(engine, VARIANTS, [])
    assert (later.merge.inserted, later.released, later.held) == (1, 1, 1)
    assert rows(engine, "SELECT variant_code FROM legacy_variants") == [("V1",)]
    with engine.connect() as connection:
        held = connection.execute(
            sa.select(
                sync_held_records.c.record_key,
                sync_held_records.c.attempts,
                sync_held_records.c.released_by_run_id,
            ).order_by(sync_held_records.c.record_key)
        ).all()
    assert held[0].released_by_run_id == later.sync_run_id
    assert (held[1].record_key, held[1].attempts, held[1].released_by_run_id) == ("V2", 2, None)


# --- conflicts -------------------------------------------------------------------------------


def test_an_older_version_from_the_source_does_not_overwrite_a_newer_row(engine):
    legacy(engine, PRODUCTS, [product("P1", modified="2026-11-02T10:00:00Z", Name="New name")])
    stale = [product("P1", modified="2026-11-01T10:00:00Z", Name="Old name")]
    report = legacy(engine, PRODUCTS, stale, full_refresh=True)

    assert report.merge.updated == 0
    assert rows(engine, "SELECT name FROM legacy_products") == [("New name",)]
    with engine.connect() as connection:
        conflict = connection.execute(sa.select(sync_conflicts)).mappings().one()
    assert (conflict["record_key"], conflict["kind"], conflict["resolution"]) == (
        "P1",
        "stale_source",
        "kept_warehouse",
    )
    assert conflict["incoming_timestamp"] < conflict["warehouse_timestamp"]


def test_a_row_changed_by_someone_else_mid_merge_is_a_resolved_conflict(pg_database):
    """PostgreSQL only: a SQLite writer holds the database lock for the whole merge, so no
    one can change a row between its read and its write there."""

    from sync_platform.engine.hashing import row_hash_expr
    from sync_platform.engine.mapping import map_records
    from sync_platform.warehouse.connection import create_warehouse_engine

    engine = create_warehouse_engine(pg_database)
    legacy(
        engine,
        PRODUCTS,
        [
            product("P1", modified="2026-11-01T10:00:00Z"),
            product("P2", modified="2026-11-01T10:00:00Z"),
        ],
    )

    def someone_else_edits():
        with engine.begin() as other:  # a second connection, committing inside our window
            other.execute(
                sa.text(
                    "UPDATE legacy_products SET name = 'Edited by hand', _version = _version + 1, "
                    "modified_at = '2026-11-03T00:00:00+00' WHERE product_code = 'P1'"
                )
            )
            other.execute(
                sa.text(
                    "UPDATE legacy_products SET name = 'Stale edit', _version = _version + 1, "
                    "modified_at = '2026-11-01T11:00:00+00' WHERE product_code = 'P2'"
                )
            )

    incoming, _ = map_records(
        [
            product("P1", modified="2026-11-02T10:00:00Z", Name="From source"),
            product("P2", modified="2026-11-02T10:00:00Z", Name="From source"),
        ],
        PRODUCTS,
    )
    incoming = incoming.drop("_row_index").with_columns(
        row_hash_expr(PRODUCTS.value_columns).alias("_row_hash")
    )
    with engine.begin() as connection:
        outcome = merge_snapshot(
            connection,
            entity_table(PRODUCTS),
            PRODUCTS,
            incoming,
            complete_snapshot=False,
            sync_run_id=1,
            now=__import__("datetime").datetime.now(__import__("datetime").UTC),
            max_delete_share=1.0,
            after_state_read=someone_else_edits,
        )
    resolutions = {c["record_key"]: (c["kind"], c["resolution"]) for c in outcome.conflicts}
    assert resolutions == {
        "P1": ("concurrent_update", "kept_warehouse"),  # the hand edit is newer
        "P2": ("concurrent_update", "applied_source"),  # the source is newer
    }
    names = dict(rows(engine, "SELECT product_code, name FROM legacy_products"))
    assert names == {"P1": "Edited by hand", "P2": "From source"}
    engine.dispose()


# --- gaps and targeted resync ------------------------------------------------------------------


def test_a_targeted_resync_brings_exactly_the_missing_keys_and_closes_their_gaps(engine):
    records = fleet(30)
    listed = [r["StockNumber"] for r in records]
    first = run_entity_sync(
        engine,
        SyncRequest("dealer_feed", STOCK),
        in_memory_source(records[:10] + records[11:], listed=listed),
    )
    assert first.verification.missing_keys == ["STK000010"]

    resync = run_entity_sync(
        engine,
        SyncRequest("dealer_feed", STOCK, trigger="resync", only_keys=["STK000010"]),
        in_memory_source(records, listed=listed),
    )
    assert (resync.merge.inserted, resync.merge.updated, resync.merge.soft_deleted) == (1, 0, 0)
    with engine.connect() as connection:
        gap = connection.execute(sa.select(sync_gaps)).mappings().one()
    assert (gap["status"], gap["attempts"], gap["resolved_by_run_id"]) == (
        "resolved",
        1,
        resync.sync_run_id,
    )
    assert rows(engine, "SELECT count(*) FROM sync_alerts")[0][0] == 0


def test_a_gap_still_missing_after_the_last_attempt_raises_one_high_alert(engine):
    with engine.begin() as connection:
        set_setting(connection, "gap_resync_max_attempts", "2")
    records = fleet(20)
    listed = [r["StockNumber"] for r in records]
    without = records[:5] + records[6:]  # STK000005 never comes back
    run_entity_sync(
        engine, SyncRequest("dealer_feed", STOCK), in_memory_source(without, listed=listed)
    )
    for _attempt in (1, 2):
        report = run_entity_sync(
            engine,
            SyncRequest("dealer_feed", STOCK, trigger="resync", only_keys=["STK000005"]),
            in_memory_source(without, listed=listed),
        )
    assert report.verification.unrecoverable == ["STK000005"]
    with engine.connect() as connection:
        gap = connection.execute(sa.select(sync_gaps)).mappings().one()
        alerts = connection.execute(sa.select(sync_alerts)).mappings().all()
    assert (gap["status"], gap["attempts"]) == ("unrecoverable", 2)
    assert len(alerts) == 1
    assert alerts[0]["severity"] == "high" and alerts[0]["type"] == "unrecovered_gap"
    assert "STK000005" in alerts[0]["message"] and "after 2 resync attempts" in alerts[0]["message"]


# --- integrity alerts ---------------------------------------------------------------------------


def test_quarantined_records_raise_one_integrity_alert_until_a_clean_sync(engine):
    records = fleet(40)
    records[3] = vehicle(3, VIN="BAD")
    for _ in range(2):
        run_entity_sync(engine, SyncRequest("dealer_feed", STOCK), in_memory_source(records))
    with engine.connect() as connection:
        alert = connection.execute(sa.select(sync_alerts)).mappings().one()
    assert (alert["type"], alert["severity"], alert["occurrences"], alert["status"]) == (
        "data_integrity",
        "medium",
        2,
        "open",
    )
    assert "STK000003" in alert["message"]
    records[3] = vehicle(3)
    run_entity_sync(engine, SyncRequest("dealer_feed", STOCK), in_memory_source(records))
    with engine.connect() as connection:
        assert connection.execute(sa.select(sync_alerts.c.status)).scalar() == "resolved"


def test_a_record_maps_the_same_whichever_records_share_its_page():
    """A nested value elsewhere on a page sends the page down the exact per-value path; a
    float there is written as the fast path writes it (2015.0 is the integer 2015)."""
    from sync_platform.config import cached_source_config
    from sync_platform.engine.mapping import map_records

    stock = cached_source_config("dealer_feed").entities["dealer_stock"]
    record = {
        "StockNumber": "STK000001",
        "VIN": "1HGCM82633A004352",
        "Make": "Toyota",
        "Model": "Corolla",
        "Year": 2015.0,
        "Odometer": 1e5,
        "Price": 18990.5,
        "Status": "Available",
        "LastUpdated": "2026-01-01T00:00:00Z",
    }
    nested = dict(record, StockNumber="STK000002", Badge={"name": "Ascent"})
    alone, refused_alone = map_records([record], stock)
    beside, refused_beside = map_records([record, nested], stock)
    assert not refused_alone and [r.record_key for r in refused_beside] == []
    assert alone.row(0, named=True) == beside.row(0, named=True)
    assert (beside["year"][0], beside["odometer"][0]) == (2015, 100000)
