"""Platform-wide sensors and run tagging."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from sync_platform.defs.platform.sensors import record_run_failures
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.tags import trigger_of
from sync_platform.warehouse.platform_tables import sync_errors
from sync_platform_tests.dagster_runs import run_job


def test_trigger_is_read_from_run_tags():
    assert trigger_of({}) == "manual"
    assert trigger_of({"dagster/schedule_name": "dealer_sync_every_15_minutes"}) == "scheduled"
    assert trigger_of({"dagster/sensor_name": "x"}) == "sensor"
    assert trigger_of({"dagster/backfill": "abc", "dagster/schedule_name": "y"}) == "backfill"
    assert trigger_of({"sync_platform/trigger": "resync", "dagster/sensor_name": "x"}) == "resync"


def test_a_failed_run_is_recorded_once_with_its_reason(source_env, warehouse_url):
    source_env.faults(down=True)
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(instance=instance)
    assert not result.success
    failure = next(
        event for event in result.all_events if event.event_type_value == "PIPELINE_FAILURE"
    )

    context = dg.build_run_status_sensor_context(
        sensor_name="record_run_failures",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    warehouse = WarehouseResource(url=warehouse_url)
    record_run_failures(context, warehouse=warehouse)
    record_run_failures(context, warehouse=warehouse)  # a re-evaluated tick adds nothing

    with warehouse.get_engine().connect() as connection:
        rows = (
            connection.execute(sa.select(sync_errors).where(sync_errors.c.sync_run_id.is_(None)))
            .mappings()
            .all()
        )
    assert len(rows) == 1
    assert rows[0]["dagster_run_id"] == result.run_id
    assert "dealer_sync" in rows[0]["message"] and rows[0]["source"] == "dealer_feed"
