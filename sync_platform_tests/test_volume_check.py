"""`volume_normal`: a sync whose rows fetched or written jump far from its trailing syncs of
the same kind warns (a truncated or flooded source), unless the jump is small against the
entity's size. A snapshot is compared with snapshots, a delta with deltas, a key resync is
not judged, and what grows with the time since the last sync is judged per hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from sync_platform.config import cached_source_config
from sync_platform.engine import audit
from sync_platform.orchestration.checks import volume_normal
from sync_platform.warehouse.entity_tables import (
    FIRST_SYNCED_AT,
    ROW_HASH,
    SYNCED_AT,
    entity_table,
)
from sync_platform.warehouse.schema import ensure_entity_table

DEALER = cached_source_config("dealer_feed")
STOCK = DEALER.entities["dealer_stock"]
ERP = cached_source_config("legacy_erp")
PRODUCTS = ERP.entities["legacy_products"]
START = datetime(2026, 11, 1, tzinfo=UTC)


class History:
    """Syncs of one entity, an hour apart unless told otherwise."""

    def __init__(self, engine: sa.Engine, source, entity) -> None:
        self.engine, self.source, self.entity = engine, source, entity
        self.at = START

    def sync(self, kind: str, fetched: int, written: int, after: timedelta = timedelta(hours=1)):
        self.at += after
        run_id = audit.start_sync_run(
            self.engine, source=self.source.source, entity=self.entity.name,
            trigger="scheduled", dagster_run_id=None, partition_key=None, kind=kind,
        )  # fmt: skip
        with self.engine.begin() as connection:
            audit.update_sync_run(
                connection, run_id, status="succeeded", started_at=self.at,
                fetched=fetched, inserted=0, updated=written,
            )  # fmt: skip

    def judged(self, kind: str, fetched: int, written: int, after=timedelta(hours=1)):
        self.sync(kind, fetched, written, after)
        with self.engine.connect() as connection:
            return volume_normal(connection, self.source, self.entity)


def test_snapshot_jumps_warn_only_when_material(engine):
    stock = History(engine, DEALER, STOCK)
    for written in (4, 5, 6, 5, 4, 6, 5, 4, 5, 6):
        stock.sync("snapshot", 200, written)
    # 40 rows written after a run of about 5: a robust z far above 3.5, but under a quarter
    # of the 220 rows
    small = stock.judged("snapshot", 220, 40)
    assert small.passed and small.metadata["robust_z_written"].value > 3.5
    flooded = stock.judged("snapshot", 200, 150)  # three quarters of the stock rewritten
    assert not flooded.passed and "written robust z" in flooded.description
    truncated = stock.judged("snapshot", 60, 5)  # less than a third of the stock served
    assert not truncated.passed and "fetched robust z" in truncated.description


def test_a_late_snapshot_is_judged_by_its_rate_of_change(engine):
    stock = History(engine, DEALER, STOCK)
    for _ in range(10):
        stock.sync("snapshot", 200, 5)
    # five hours late: five hours of changes at once is the usual rate, not a flood …
    late = stock.judged("snapshot", 200, 60, after=timedelta(hours=5))
    assert late.passed, late.description
    # … while the same rows written one hour after the last sync are
    assert not stock.judged("snapshot", 200, 60).passed


def test_a_key_resync_is_not_judged_and_does_not_count(engine):
    stock = History(engine, DEALER, STOCK)
    for _ in range(10):
        stock.sync("snapshot", 200, 5)
    # a gap resync of one vehicle reads one row: not a truncated source
    resync = stock.judged("keys", 1, 1, after=timedelta(minutes=5))
    assert resync.passed and resync.metadata["sync_kind"].text == "snapshot"
    # and the next snapshot is still compared with snapshots only
    truncated = stock.judged("snapshot", 50, 5)
    assert not truncated.passed and truncated.metadata["sync_kind"].text == "snapshot"


def test_a_full_sync_among_deltas_is_compared_with_full_syncs_only(engine):
    with engine.begin() as connection:
        ensure_entity_table(connection, PRODUCTS)
        table = entity_table(PRODUCTS)
        connection.execute(
            sa.insert(table),
            [
                {"product_code": f"P{n:05d}", "name": "product", "modified_at": START,
                 ROW_HASH: n, FIRST_SYNCED_AT: START, SYNCED_AT: START}
                for n in range(1000)
            ],
        )  # fmt: skip
    products = History(engine, ERP, PRODUCTS)
    for fetched in (3, 4, 3, 5, 3, 4, 3, 4):
        products.sync("changes", fetched, fetched)
    # the weekly full sync reads every product: the first of its kind, nothing to compare
    full = products.judged("snapshot", 1000, 2)
    assert full.passed and full.metadata["note"].text == "not enough history"
    # the next delta is compared with deltas, and one three hours late reads three hours of
    # changes without a warning
    assert products.judged("changes", 4, 4).passed
    late = products.judged("changes", 11, 11, after=timedelta(hours=3))
    assert late.passed, late.description
    # a delta of 400 changed products within the hour is a flood of the source
    flooded = products.judged("changes", 400, 400)
    assert not flooded.passed and "fetched robust z" in flooded.description
