"""The six-step sync through the engine's entry point, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

from sync_platform.engine.pipeline import run_entity_sync
from sync_platform.engine.ports import EntitySource, SyncRequest
from sync_platform.errors import SchemaDriftError
from sync_platform.runtime_config import set_setting
from sync_platform.warehouse.platform_tables import (
    sync_errors,
    sync_gaps,
    sync_quarantine,
    sync_record_log,
    sync_runs,
    sync_state,
)
from sync_platform_tests.records import LEADS, STOCK, fleet, in_memory_source, lead, vehicle


def sync_stock(engine, records, **kwargs):
    listed = kwargs.pop("listed", None)
    request = SyncRequest("dealer_feed", STOCK, **kwargs)
    return run_entity_sync(engine, request, in_memory_source(records, listed=listed))


def active_stock(engine) -> dict[str, dict]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT * FROM dealer_stock WHERE _deleted_at IS NULL")
        ).mappings()
        return {row["stock_number"]: dict(row) for row in rows}


def test_initial_load_writes_every_row_and_an_audit_record(engine):
    report = sync_stock(engine, fleet(250))

    assert (report.status, report.fetched, report.merge.inserted) == ("succeeded", 250, 250)
    rows = active_stock(engine)
    assert len(rows) == 250
    assert str(rows["STK000007"]["price"]) in ("15087.5", "15087.50")
    with engine.connect() as connection:
        audit = connection.execute(sa.select(sync_runs)).mappings().one()
    assert audit["status"] == "succeeded"
    assert (audit["fetched"], audit["inserted"], audit["updated"]) == (250, 250, 0)
    assert audit["verification"] == "passed"
    assert audit["source_count"] == audit["warehouse_count"] == 250
    assert set(audit["phase_seconds"]) >= {"fetch", "map", "validate", "merge", "verify"}


def test_rerun_changes_nothing_and_k_changed_rows_update_exactly_k(engine):
    records = fleet(300)
    sync_stock(engine, records)
    before = active_stock(engine)

    again = sync_stock(engine, records)
    assert (again.merge.inserted, again.merge.updated, again.merge.unchanged) == (0, 0, 300)
    assert active_stock(engine) == before

    for i in (3, 50, 299):
        records[i] = vehicle(i, Price=1.0, LastUpdated="2026-11-02T08:00:00Z")
    changed = sync_stock(engine, records)
    assert (changed.merge.inserted, changed.merge.updated, changed.merge.unchanged) == (0, 3, 297)
    after = active_stock(engine)
    assert {k for k in after if after[k]["_version"] == 2} == {
        "STK000003",
        "STK000050",
        "STK000299",
    }
    assert float(after["STK000050"]["price"]) == 1.0
    with engine.connect() as connection:
        logged = connection.execute(
            sa.select(sync_record_log.c.record_key, sync_record_log.c.operation).where(
                sync_record_log.c.sync_run_id == changed.sync_run_id
            )
        ).all()
    assert sorted(logged) == [
        ("STK000003", "update"),
        ("STK000050", "update"),
        ("STK000299", "update"),
    ]


def test_malformed_rows_are_quarantined_with_reasons_and_the_rest_load(engine):
    records = fleet(100)
    records[10] = vehicle(10, VIN="TOO-SHORT")
    records[20] = vehicle(20, Price="abc")
    records[30] = vehicle(30, Price=-5)
    records[40] = {k: v for k, v in vehicle(40).items() if k != "Make"}

    report = sync_stock(engine, records)

    assert report.status == "warning"
    assert (report.fetched, report.quarantined, report.merge.inserted) == (100, 4, 96)
    with engine.connect() as connection:
        quarantined = {
            row.record_key: row for row in connection.execute(sa.select(sync_quarantine)).all()
        }
    assert set(quarantined) == {"STK000010", "STK000020", "STK000030", "STK000040"}
    assert "vin" in quarantined["STK000010"].reason
    assert "price: 'abc' is not a valid decimal" in quarantined["STK000020"].reason
    assert (
        "price" in quarantined["STK000030"].reason
        and "greater_than" in quarantined["STK000030"].reason
    )
    assert "make: required value is missing" in quarantined["STK000040"].reason
    assert json.loads(quarantined["STK000020"].raw_record)["Price"] == "abc"
    assert "STK000010" not in active_stock(engine)
    # Quarantined keys are known failures, not gaps.
    assert report.verification.status == "passed"


def test_quarantined_key_keeps_its_last_good_row(engine):
    records = fleet(50)
    sync_stock(engine, records)
    records[5] = vehicle(5, VIN="BAD")
    report = sync_stock(engine, records)
    assert (report.quarantined, report.merge.soft_deleted, report.merge.updated) == (1, 0, 0)
    assert active_stock(engine)["STK000005"]["vin"] == "1HGCM82633A000005"


def test_vanished_rows_are_soft_deleted_and_come_back_when_they_return(engine):
    records = fleet(100)
    sync_stock(engine, records)
    gone = records.pop(7)

    report = sync_stock(engine, records)
    assert report.merge.soft_deleted == 1
    assert "STK000007" not in active_stock(engine)
    with engine.connect() as connection:
        deleted = connection.execute(
            sa.text("SELECT _deleted_at FROM dealer_stock WHERE stock_number = 'STK000007'")
        ).scalar()
    assert deleted is not None

    records.append(gone)
    back = sync_stock(engine, records)
    assert (back.merge.updated, back.merge.inserted) == (1, 0)
    assert "STK000007" in active_stock(engine)


def test_mass_delete_guard_refuses_and_says_so_but_applies_upserts(engine):
    records = fleet(100)
    sync_stock(engine, records)
    survivors = records[:70]
    survivors[0] = vehicle(0, Price=2.0)

    report = sync_stock(engine, survivors)

    assert report.merge.soft_deleted == 0
    assert report.merge.updated == 1
    assert "refused to soft-delete 30 of 100 active rows" in report.merge.delete_refused
    assert "allow_mass_delete" in report.merge.delete_refused
    assert report.status == "warning"
    assert len(active_stock(engine)) == 100
    assert report.verification.unexpected_count == 30
    with engine.connect() as connection:
        message = connection.execute(
            sa.select(sync_runs.c.message).where(sync_runs.c.id == report.sync_run_id)
        ).scalar()
    assert "refused to soft-delete" in message

    forced = sync_stock(engine, survivors, allow_mass_delete=True)
    assert forced.merge.soft_deleted == 30
    assert len(active_stock(engine)) == 70


def test_mass_delete_share_is_read_from_runtime_config(engine):
    records = fleet(100)
    sync_stock(engine, records)
    with engine.begin() as connection:
        set_setting(connection, "mass_delete_max_share", "0.5")
    report = sync_stock(engine, records[:70])
    assert report.merge.soft_deleted == 30 and report.merge.delete_refused is None


def test_an_empty_snapshot_never_empties_the_table(engine):
    sync_stock(engine, fleet(20))
    report = sync_stock(engine, [])
    assert report.merge.soft_deleted == 0 and report.merge.delete_refused
    assert len(active_stock(engine)) == 20


def test_source_keys_missing_from_warehouse_become_gaps_and_close_when_fixed(engine):
    records = fleet(40)
    listed = [r["StockNumber"] for r in records]
    dropped = records.pop(12)  # the fetch silently lost one record the source still lists

    report = sync_stock(engine, records, listed=listed)
    assert report.verification.missing_keys == ["STK000012"]
    assert report.status == "warning"
    with engine.connect() as connection:
        gap = connection.execute(sa.select(sync_gaps)).mappings().one()
    assert (gap["record_key"], gap["status"], gap["detected_by_run_id"]) == (
        "STK000012",
        "open",
        report.sync_run_id,
    )

    again = sync_stock(engine, records, listed=listed)  # still missing: no duplicate gap
    assert again.verification.gaps_opened == 0
    records.insert(12, dropped)
    fixed = sync_stock(engine, records, listed=listed)
    assert fixed.verification.status == "passed" and fixed.verification.gaps_resolved == 1
    with engine.connect() as connection:
        gap = connection.execute(sa.select(sync_gaps)).mappings().one()
    assert (gap["status"], gap["resolved_by_run_id"]) == ("resolved", fixed.sync_run_id)


def test_incremental_sync_advances_the_cursor_and_never_deletes(engine):
    def source(records):
        seen = []

        def pages(since):
            seen.append(since)
            return [
                [
                    r
                    for r in records
                    if since is None or r["UpdatedAt"] >= since.isoformat().replace("+00:00", "Z")
                ]
            ]

        return EntitySource(pages=pages), seen

    first = [lead(i, updated=f"2026-11-01T09:{i:02d}:00Z") for i in range(10)]
    src, seen = source(first)
    report = run_entity_sync(engine, SyncRequest("dealer_feed", LEADS), src)
    assert report.merge.inserted == 10 and report.cursor_after.startswith("2026-11-01T09:09:00")

    later = [
        *first[:3],
        lead(3, updated="2026-11-01T10:00:00Z", Status="won"),
        lead(99, updated="2026-11-01T10:01:00Z"),
    ]
    src, seen = source(later)
    delta = run_entity_sync(engine, SyncRequest("dealer_feed", LEADS), src)
    # The overlap margin (300 s) re-reads from 09:04, nothing before it is fetched.
    assert seen[0].isoformat().startswith("2026-11-01T09:04:00")
    assert (delta.merge.inserted, delta.merge.updated, delta.merge.soft_deleted) == (1, 1, 0)
    with engine.connect() as connection:
        total = connection.execute(
            sa.text("SELECT count(*) FROM dealer_leads WHERE _deleted_at IS NULL")
        ).scalar()
        cursor = connection.execute(
            sa.select(sync_state.c.cursor).where(sync_state.c.entity == "dealer_leads")
        ).scalar()
    assert total == 11
    assert cursor.startswith("2026-11-01T10:01:00")


def test_a_failed_fetch_writes_nothing_and_records_the_error(engine):
    sync_stock(engine, fleet(30))

    def failing_pages(_since):
        yield [vehicle(i) for i in range(10)]
        raise ConnectionError("feed went away mid-pagination")

    with pytest.raises(ConnectionError):
        run_entity_sync(
            engine, SyncRequest("dealer_feed", STOCK), EntitySource(pages=failing_pages)
        )
    assert len(active_stock(engine)) == 30  # a partial snapshot deletes nothing
    with engine.connect() as connection:
        audit = (
            connection.execute(sa.select(sync_runs).order_by(sync_runs.c.id.desc()))
            .mappings()
            .first()
        )
        error = connection.execute(sa.select(sync_errors)).mappings().one()
    assert audit["status"] == "failed" and "mid-pagination" in audit["message"]
    assert error["sync_run_id"] == audit["id"] and error["category"] == "unknown"
    assert "ConnectionError" in error["stack"]


def test_of_a_repeated_key_the_first_record_loads_and_later_copies_are_quarantined(engine):
    # one copy on a later page (the source pages by 100), one on the same page
    records = [*fleet(150), vehicle(5, Price=99.0), vehicle(7, Price=77.0)]
    records.insert(8, vehicle(7, Price=88.0))
    report = sync_stock(engine, records)
    assert report.quarantined == 3 and report.merge.inserted == 150
    stock = active_stock(engine)
    assert float(stock["STK000005"]["price"]) == vehicle(5)["Price"]  # the first copy
    assert float(stock["STK000007"]["price"]) == vehicle(7)["Price"]
    with engine.connect() as connection:
        reasons = sorted(
            connection.execute(
                sa.text("SELECT record_key, reason FROM sync_quarantine ORDER BY id")
            ).all()
        )
    assert [key for key, _ in reasons] == ["STK000005", "STK000007", "STK000007"]
    assert (
        "returned STK000005 more than once, with different values; record 6 was loaded, "
        "this is record 152"
    ) in str(reasons[0][1])
    assert "record 8 was loaded, this is record 9" in str(reasons[1][1] + reasons[2][1])


def test_a_record_served_twice_with_the_same_values_loads_once_and_is_not_quarantined(engine):
    """An offset-paged source read while a record is added before a page boundary serves
    the boundary's record again at the top of the next page: the same record, not a
    conflict to quarantine and alert on."""
    records = [*fleet(150)]
    records.insert(100, vehicle(99))  # the last record of page 1, again first on page 2
    records.insert(130, vehicle(7, Price=77.0))  # a repeat with other values still counts
    report = sync_stock(engine, records)
    assert report.merge.inserted == 150 and report.quarantined == 1
    with engine.connect() as connection:
        quarantined = (
            connection.execute(sa.text("SELECT record_key FROM sync_quarantine")).scalars().all()
        )
    assert quarantined == ["STK000007"]
    assert float(active_stock(engine)["STK000099"]["price"]) == vehicle(99)["Price"]


def test_concurrent_syncs_of_different_entities_do_not_see_each_others_rows(engine):
    errors: list[BaseException] = []
    reports = {}

    def run(name, fn):
        try:
            reports[name] = fn()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    stock_thread = threading.Thread(
        target=run, args=("stock", lambda: sync_stock(engine, fleet(2000)))
    )
    leads_source = EntitySource(pages=lambda _s: [[lead(i) for i in range(1500)]])
    leads_thread = threading.Thread(
        target=run,
        args=(
            "leads",
            lambda: run_entity_sync(engine, SyncRequest("dealer_feed", LEADS), leads_source),
        ),
    )
    stock_thread.start(), leads_thread.start()
    stock_thread.join(), leads_thread.join()

    assert not errors, errors
    assert reports["stock"].merge.inserted == 2000 and reports["leads"].merge.inserted == 1500
    assert len(active_stock(engine)) == 2000


def test_a_large_initial_load_ends_with_its_primary_key_intact(engine):
    """The initial-load fast path (Postgres builds the key after the rows) keeps the key."""
    records = fleet(12_000)
    first = sync_stock(engine, records)
    assert first.merge.inserted == 12_000
    key = sa.inspect(engine).get_pk_constraint("dealer_stock")
    assert key["constrained_columns"] == ["stock_number"]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO dealer_stock "
                "SELECT * FROM dealer_stock WHERE stock_number = 'STK000001'"
            )
        )
    records[1] = vehicle(1, Price=5.0)
    again = sync_stock(engine, records)
    assert (again.merge.inserted, again.merge.updated) == (0, 1)


def test_an_api_whose_records_lost_a_field_is_schema_drift(engine):
    """JSON records that no longer carry a mapped field: a required one fails the sync with
    nothing written; an optional one loads, named in the report for the alert."""
    sync_stock(engine, fleet(30))
    without_make = [{k: v for k, v in vehicle(i).items() if k != "Make"} for i in range(30)]
    with pytest.raises(SchemaDriftError, match="carries 'Make' \\(column make\\)"):
        sync_stock(engine, without_make)
    assert {row["make"] for row in active_stock(engine).values()} == {"Toyota"}  # unchanged
    renamed = [{**{k: v for k, v in vehicle(i).items() if k != "Badge"}, "Trim": "GX"}
               for i in range(30)]  # fmt: skip
    report = sync_stock(engine, renamed)
    assert report.fields_missing == {"variant": "Badge"} and report.fields_unmapped == ["Trim"]
    few = [{k: v for k, v in vehicle(i).items() if k != "Badge"} for i in range(5)]
    assert sync_stock(engine, few, allow_mass_delete=True).fields_missing == {}  # too few to say
