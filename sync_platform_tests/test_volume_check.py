"""`volume_normal`: a sync whose rows fetched or written jump far from its trailing syncs
warns (a truncated or flooded source), unless the jump is small against the entity's size."""

from __future__ import annotations

import sqlalchemy as sa

from sync_platform.config import cached_source_config
from sync_platform.engine import audit
from sync_platform.orchestration.checks import volume_normal

SOURCE = cached_source_config("dealer_feed")
STOCK = SOURCE.entities["dealer_stock"]


def _sync(engine: sa.Engine, fetched: int, written: int) -> None:
    run_id = audit.start_sync_run(
        engine, source="dealer_feed", entity="dealer_stock", trigger="scheduled",
        dagster_run_id=None, partition_key=None,
    )  # fmt: skip
    with engine.begin() as connection:
        audit.update_sync_run(
            connection, run_id, status="succeeded", fetched=fetched, inserted=0, updated=written
        )


def _judged(engine: sa.Engine, fetched: int, written: int):
    _sync(engine, fetched, written)
    with engine.connect() as connection:
        return volume_normal(connection, SOURCE, STOCK)


def test_volume_jumps_warn_only_when_material(engine):
    for written in (4, 5, 6, 5, 4, 6, 5, 4, 5, 6):
        _sync(engine, 200, written)
    # 40 rows written after a run of about 5 (a late sync takes several rounds of changes at
    # once): a robust z far above 3.5, but under a quarter of the 220 rows
    small = _judged(engine, 220, 40)
    assert small.passed and small.metadata["robust_z_written"].value > 3.5
    flooded = _judged(engine, 200, 150)  # three quarters of the stock rewritten at once
    assert not flooded.passed and "written robust z" in flooded.description
    truncated = _judged(engine, 60, 5)  # the source served less than a third of its rows
    assert not truncated.passed and "fetched robust z" in truncated.description
