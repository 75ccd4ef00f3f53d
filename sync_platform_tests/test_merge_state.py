"""The packed merge state (warehouse/merge_state.py), PostgreSQL only.

A complete snapshot of a large table is diffed against the state packed by the previous
merge instead of reading the table. That is only right while the packed state is exactly
the table's: every test here writes the table some other way (by hand, mid-merge, in a
rolled-back transaction, by TRUNCATE or a rewrite) or damages the state, and then checks
that the next sync leaves the table holding the source's data, which a stale state would
not. The threshold is lowered so a few rows stand in for a large table.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
import sqlalchemy as sa

from sync_platform.engine import merge
from sync_platform.engine.hashing import row_hash_expr
from sync_platform.engine.mapping import map_records
from sync_platform.engine.pipeline import run_entity_sync
from sync_platform.engine.ports import SyncRequest
from sync_platform.warehouse import merge_state
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.entity_tables import entity_table
from sync_platform.warehouse.schema import upgrade_warehouse
from sync_platform_tests.records import STOCK, fleet, in_memory_source, vehicle


@pytest.fixture
def engine(pg_database, monkeypatch):
    monkeypatch.setattr(merge_state, "MIN_ROWS", 1)
    engine = create_warehouse_engine(pg_database)
    yield engine
    engine.dispose()


@pytest.fixture
def full_reads(monkeypatch) -> list[int]:
    """How many rows each full read of the table's state returned (packed reads add none)."""
    reads, existing_state = [], merge._existing_state

    def counted(connection, table, entity, incoming, *, complete_snapshot, scope):
        state = existing_state(
            connection, table, entity, incoming, complete_snapshot=complete_snapshot, scope=scope
        )
        if complete_snapshot:
            reads.append(state.height)
        return state

    monkeypatch.setattr(merge, "_existing_state", counted)
    return reads


def sync(engine, records):
    return run_entity_sync(engine, SyncRequest("dealer_feed", STOCK), in_memory_source(records))


def mapped(records) -> pl.DataFrame:
    """`records` as the merge receives them: typed, with their row hashes."""
    incoming, _ = map_records(records, STOCK)
    return incoming.drop("_row_index").with_columns(
        row_hash_expr(STOCK.value_columns).alias("_row_hash")
    )


def merge_now(connection, records, **kwargs):
    return merge.merge_snapshot(
        connection,
        entity_table(STOCK),
        STOCK,
        mapped(records),
        complete_snapshot=True,
        sync_run_id=1,
        now=datetime.now(UTC),
        max_delete_share=1.0,
        **kwargs,
    )


def table_state(engine) -> pl.DataFrame:
    """The table's state as a full read gives it."""
    with engine.connect() as connection:
        state = merge.STATE_SCHEMA
        query = sa.text(
            "SELECT stock_number, _row_hash, CASE WHEN _deleted_at IS NULL THEN 0 ELSE 1 END, "
            "_version FROM dealer_stock"
        )
        rows = connection.execute(query).all()
    return pl.DataFrame(rows, schema=state, orient="row").sort(merge.KEY)


def packed(engine) -> pl.DataFrame | None:
    with engine.connect() as connection:
        kept = merge_state.read(connection, STOCK.table, STOCK.key, merge.STATE_SCHEMA)
    return None if kept is None or kept.frame is None else kept.frame.sort(merge.KEY)


def live(engine) -> dict[str, int]:
    """stock number → odometer of every row not soft-deleted."""
    with engine.connect() as connection:
        return dict(
            connection.execute(
                sa.text("SELECT stock_number, odometer FROM dealer_stock WHERE _deleted_at IS NULL")
            ).all()
        )


def expected(records) -> dict[str, int]:
    return {r["StockNumber"]: r["Odometer"] for r in records}


def by_hand(engine, sql: str) -> None:
    with engine.begin() as other:
        other.execute(sa.text(sql))


def test_a_resync_diffs_against_the_packed_state_which_stays_the_tables_exact_state(
    engine, full_reads
):
    records = fleet(30)
    first = sync(engine, records)
    assert first.merge.inserted == 30 and full_reads == [0]
    assert packed(engine).equals(table_state(engine))

    records = [vehicle(i, Odometer=99_000 + i) if i < 3 else vehicle(i) for i in range(32)]
    records = [r for r in records if r["StockNumber"] not in ("STK000010", "STK000011")]
    second = sync(engine, records)
    assert (second.merge.updated, second.merge.inserted, second.merge.soft_deleted) == (3, 2, 2)
    records.append(vehicle(10))  # back from the dead
    third = sync(engine, records)
    assert (third.merge.updated, third.merge.inserted, third.merge.soft_deleted) == (1, 0, 0)
    unchanged = sync(engine, records)
    assert unchanged.merge.unchanged == 31 and not unchanged.merge.changes.height

    assert full_reads == [0], "the re-syncs read the packed state, not the table"
    assert packed(engine).equals(table_state(engine))
    assert live(engine) == expected(records)
    assert table_state(engine).filter(pl.col(merge.KEY) == "STK000010")["_existing_version"][0] == 3


def stored(engine) -> tuple[bytes | None, pl.DataFrame | None]:
    """The state as last written whole (its bytes) and the rows changed since."""
    with engine.connect() as connection:
        state, changes = connection.execute(
            sa.text("SELECT state, changes FROM sync_merge_state WHERE table_name = 'dealer_stock'")
        ).one()
    return state, None if changes is None else pl.read_ipc(changes).sort(merge.KEY)


def test_a_small_change_stores_the_changed_rows_beside_the_state_until_they_reach_a_tenth(
    engine, full_reads
):
    sync(engine, fleet(40))
    whole, changes = stored(engine)
    assert whole is not None and changes is None

    records = [vehicle(i, Odometer=1) if i < 2 else vehicle(i) for i in range(41)]
    sync(engine, records)  # 2 updated, 1 inserted: 3 of 41 rows
    state, changes = stored(engine)
    assert state == whole, "the state written whole is left as it was"
    assert changes.get_column(merge.KEY).to_list() == ["STK000000", "STK000001", "STK000040"]
    assert packed(engine).equals(table_state(engine))

    records = [vehicle(i, Odometer=2) if i in (1, 2) else r for i, r in enumerate(records)]
    sync(engine, records)  # STK000001 again, and STK000002: 4 rows changed since
    state, changes = stored(engine)
    assert state == whole and changes.height == 4
    assert changes.filter(pl.col(merge.KEY) == "STK000001")["_existing_version"][0] == 3
    assert packed(engine).equals(table_state(engine))

    records = [vehicle(i, Odometer=3) if 10 <= i < 12 else r for i, r in enumerate(records)]
    sync(engine, records)  # 6 rows changed since: more than a tenth, so written whole
    state, changes = stored(engine)
    assert state != whole and changes is None
    assert packed(engine).equals(table_state(engine))
    assert live(engine) == expected(records)
    assert full_reads == [0], "every re-sync diffed against the packed state"


def test_a_row_deleted_by_hand_comes_back_on_the_next_sync(engine, full_reads):
    records = fleet(20)
    sync(engine, records)
    with engine.begin() as other:  # a session whose search_path is empty, as pg_restore's
        other.exec_driver_sql("SET LOCAL search_path = ''")
        other.exec_driver_sql("DELETE FROM public.dealer_stock WHERE stock_number = 'STK000005'")
    assert packed(engine) is None, "a write by anyone else makes the packed state stale"

    report = sync(engine, records)  # the source did not change: only the table did
    assert report.merge.inserted == 1
    assert live(engine) == expected(records)
    assert full_reads == [0, 19]
    assert packed(engine).equals(table_state(engine))


def test_a_row_kept_by_the_conflict_strategy_is_stored_as_the_merge_left_it(engine):
    """warehouse_wins keeps a row edited in place and stores the source's hash with it: the
    packed state must hold that hash and version, or the next sync sees a change that is
    not there and reports a conflict."""
    entity = STOCK.model_copy(update={"conflict_strategy": "warehouse_wins"})

    def sync_kept(records):
        return run_entity_sync(
            engine, SyncRequest("dealer_feed", entity), in_memory_source(records)
        )

    sync_kept(fleet(20))
    by_hand(engine, "UPDATE dealer_stock SET odometer = 1 WHERE stock_number = 'STK000004'")
    records = [vehicle(i, Odometer=999) if i == 4 else vehicle(i) for i in range(20)]
    kept = sync_kept(records)
    assert [(c["kind"], c["resolution"]) for c in kept.merge.conflicts] == [
        ("both_changed", "kept_warehouse")
    ]
    assert packed(engine).equals(table_state(engine))
    again = sync_kept(records)
    assert again.merge.unchanged == 20 and again.merge.conflicts == []
    assert live(engine)["STK000004"] == 1


def test_a_stale_source_row_left_unwritten_keeps_its_stored_state(engine, full_reads):
    """newest_wins keeps the warehouse's newer row without writing it: no UPDATE returns
    it, and the state stored after the merge must still hold it as it is."""
    entity = STOCK.model_copy(update={"conflict_strategy": "newest_wins"})

    def sync_newest(records):
        return run_entity_sync(
            engine, SyncRequest("dealer_feed", entity), in_memory_source(records)
        )

    sync_newest(fleet(20))
    records = [
        vehicle(i, Odometer=5, LastUpdated="2026-10-01T08:00:00Z") if i == 3 else vehicle(i)
        for i in range(20)
    ]
    records[4] = vehicle(4, Odometer=6)  # and one row really changed
    stale = sync_newest(records)
    assert [(c["kind"], c["resolution"]) for c in stale.merge.conflicts] == [
        ("stale_source", "kept_warehouse")
    ]
    assert stale.merge.updated == 1
    assert packed(engine).equals(table_state(engine))
    assert live(engine)["STK000003"] == vehicle(3)["Odometer"]
    assert full_reads == [0]


def test_an_edit_committed_mid_merge_keeps_the_state_from_being_stored(engine):
    records = fleet(20)
    sync(engine, records)

    def someone_deletes_a_row():  # a second connection, committing between read and write
        by_hand(engine, "DELETE FROM dealer_stock WHERE stock_number = 'STK000007'")

    changed = [vehicle(i, Odometer=5) if i == 1 else vehicle(i) for i in range(20)]
    with engine.begin() as connection:
        merge_now(connection, changed, after_state_read=someone_deletes_a_row)
    assert packed(engine) is None, "the state read before the delete must not be stored"
    sync(engine, records)
    assert live(engine) == expected(records)
    assert packed(engine).equals(table_state(engine))


def test_a_rolled_back_merge_leaves_the_previous_state_and_a_later_write_clears_it(engine):
    records = fleet(20)
    sync(engine, records)
    before = packed(engine)
    changed = [vehicle(i, Odometer=1) for i in range(25)]
    with pytest.raises(RuntimeError), engine.begin() as connection:
        merge_now(connection, changed)
        raise RuntimeError("the run died before committing")
    assert packed(engine).equals(before) and before.equals(table_state(engine))

    with engine.begin() as connection:  # the merge, then another write in its transaction
        merge_now(connection, changed)
        connection.execute(sa.text("DELETE FROM dealer_stock WHERE stock_number = 'STK000003'"))
    assert packed(engine) is None
    sync(engine, changed)
    assert live(engine) == expected(changed)


def test_truncate_a_table_rewrite_or_a_disabled_trigger_means_reading_the_table(engine):
    records = fleet(20)
    sync(engine, records)
    by_hand(engine, "TRUNCATE dealer_stock")
    assert packed(engine) is None
    assert sync(engine, records).merge.inserted == 20

    with engine.connect() as connection:  # a rewrite fires no trigger: a new relfilenode
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM FULL dealer_stock"
        )
    assert packed(engine) is None
    sync(engine, records)
    assert packed(engine) is not None

    by_hand(engine, f"ALTER TABLE dealer_stock DISABLE TRIGGER {merge_state.TRIGGER}")
    assert packed(engine) is None, "without its trigger a state cannot be trusted"
    by_hand(engine, f"ALTER TABLE dealer_stock ENABLE TRIGGER {merge_state.TRIGGER}")
    assert live(engine) == expected(records)


@pytest.mark.parametrize(
    "damage",
    [
        "state = decode('4152524f5731000000', 'hex')",  # Arrow's magic, then nothing
        "state = decode('deadbeef', 'hex')",
        "row_count = row_count + 1",
        "changes = decode('deadbeef', 'hex')",
    ],
)
def test_a_damaged_state_is_ignored_and_the_table_read_instead(engine, full_reads, damage):
    records = fleet(20)
    sync(engine, records)
    by_hand(engine, "DELETE FROM dealer_stock WHERE stock_number = 'STK000002'")
    sync(engine, records)  # the state now holds STK000002 again, as the table does
    by_hand(engine, f"UPDATE sync_merge_state SET {damage} WHERE table_name = 'dealer_stock'")
    assert packed(engine) is None

    changed = [vehicle(i, Odometer=7) if i == 4 else vehicle(i) for i in range(20)]
    assert sync(engine, changed).merge.updated == 1
    assert full_reads == [0, 19, 20]
    assert live(engine) == expected(changed)
    assert packed(engine).equals(table_state(engine))


def test_an_entity_table_from_before_the_merge_state_gets_its_trigger_and_fillfactor(engine):
    sync(engine, fleet(3))
    by_hand(engine, f"DROP TRIGGER {merge_state.TRIGGER} ON dealer_stock")
    by_hand(engine, "ALTER TABLE dealer_stock RESET (fillfactor)")
    assert upgrade_warehouse(engine, [STOCK])[1:] == [
        "added the merge-state trigger to dealer_stock",
        "set fillfactor 90 on dealer_stock",
    ]
    with engine.connect() as connection:
        options = connection.execute(
            sa.text("SELECT reloptions FROM pg_class WHERE relname = 'dealer_stock'")
        ).scalar()
    assert options == ["fillfactor=90"]
    assert upgrade_warehouse(engine, [STOCK])[1:] == []
    sync(engine, fleet(3))
    by_hand(engine, "UPDATE dealer_stock SET odometer = 0")
    assert packed(engine) is None
