"""retention_cleanup: old rows and runs go, what is still needed stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from sync_platform.definitions import build_definitions
from sync_platform.defs.ops.retention import purge_dagster_runs
from sync_platform.engine import audit
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.warehouse.platform_tables import (
    sync_gaps,
    sync_quarantine,
    sync_record_log,
    webhook_inbox,
)

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=400)


def _plant(engine: sa.Engine) -> None:
    run_id = audit.start_sync_run(
        engine, source="dealer_feed", entity="dealer_stock", trigger="manual",
        dagster_run_id=None, partition_key=None,
    )  # fmt: skip
    with engine.begin() as connection:
        log = {"sync_run_id": run_id, "entity": "dealer_stock", "operation": "insert"}
        connection.execute(
            sa.insert(sync_record_log),
            [
                {**log, "record_key": "old", "result": "success", "logged_at": OLD},
                {**log, "record_key": "new", "result": "success", "logged_at": NOW},
            ],
        )
        quarantine = {"source": "dealer_feed", "entity": "dealer_stock", "raw_record": "{}"}
        connection.execute(
            sa.insert(sync_quarantine),
            [
                {**quarantine, "record_key": "old", "reason": "r", "quarantined_at": OLD},
                {**quarantine, "record_key": "new", "reason": "r", "quarantined_at": NOW},
            ],
        )
        gap = {"source": "dealer_feed", "entity": "dealer_stock", "detected_at": OLD}
        connection.execute(
            sa.insert(sync_gaps),
            [
                {**gap, "record_key": "resolved-old", "status": "resolved", "resolved_at": OLD},
                {**gap, "record_key": "resolved-new", "status": "resolved", "resolved_at": NOW},
                {**gap, "record_key": "open-old", "status": "open", "resolved_at": None},
                {**gap, "record_key": "lost-old", "status": "unrecoverable", "resolved_at": None},
            ],
        )
        delivery = {"workflow_key": "new_lead", "origin": "receiver", "headers": {}, "body": "{}"}
        connection.execute(
            sa.insert(webhook_inbox),
            [
                {**delivery, "delivery_id": "processed-old", "status": "processed",
                 "received_at": OLD, "processed_at": OLD, "reason": None},
                {**delivery, "delivery_id": "processed-new", "status": "processed",
                 "received_at": NOW, "processed_at": NOW, "reason": None},
                {**delivery, "delivery_id": "pending-old", "status": "pending",
                 "received_at": OLD, "processed_at": None, "reason": None},
                {**delivery, "delivery_id": "quarantined-old", "status": "quarantined",
                 "received_at": OLD, "processed_at": OLD, "reason": "not JSON"},
            ],
        )  # fmt: skip


def _keys(engine: sa.Engine, column) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(sa.select(column)).scalars())


def test_the_cleanup_purges_old_platform_rows_and_keeps_what_is_still_needed(engine, warehouse_url):
    _plant(engine)
    job = build_definitions({"warehouse": WarehouseResource(url=warehouse_url)}).resolve_job_def(
        "retention_cleanup"
    )
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    figures = {key: value.value for key, value in output.event_specific_data.metadata.items()}
    assert figures["record_log_deleted"] == 1 and figures["quarantine_deleted"] == 1
    assert figures["resolved_gaps_deleted"] == 1 and figures["inbox_deleted"] == 1
    assert _keys(engine, sync_record_log.c.record_key) == ["new"]
    assert _keys(engine, sync_quarantine.c.record_key) == ["new"]
    assert _keys(engine, sync_gaps.c.record_key) == ["lost-old", "open-old", "resolved-new"]
    assert _keys(engine, webhook_inbox.c.delivery_id) == [
        "pending-old",
        "processed-new",
        "quarantined-old",
    ]


@pytest.mark.parametrize("page_size", [200, 1, 2])  # pages that end on a deleted run too
def test_old_runs_go_unless_they_hold_a_latest_materialization(page_size):
    @dg.asset
    def plain() -> None:
        return None

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b"]))
    def parted() -> None:
        return None

    instance = dg.DagsterInstance.ephemeral()
    superseded = dg.materialize([plain], instance=instance).run_id
    latest = dg.materialize([plain], instance=instance).run_id
    only_b = dg.materialize([parted], partition_key="b", instance=instance).run_id
    first_a = dg.materialize([parted], partition_key="a", instance=instance).run_id
    second_a = dg.materialize([parted], partition_key="a", instance=instance).run_id

    counts = purge_dagster_runs(
        instance, before=datetime.now(UTC) + timedelta(minutes=1), page_size=page_size
    )
    remaining = {run.run_id for run in instance.get_runs()}
    assert remaining == {latest, only_b, second_a}
    assert superseded not in remaining and first_a not in remaining
    assert counts == {"runs_deleted": 2, "runs_kept": 3}
    assert instance.get_materialized_partitions(dg.AssetKey("parted")) == {"a", "b"}


def test_recent_runs_are_left_alone():
    @dg.asset
    def plain() -> None:
        return None

    instance = dg.DagsterInstance.ephemeral()
    for _ in range(3):
        dg.materialize([plain], instance=instance)
    counts = purge_dagster_runs(instance, before=datetime.now(UTC) - timedelta(days=30))
    assert counts == {"runs_deleted": 0, "runs_kept": 0} and len(instance.get_runs()) == 3


def test_the_cleanup_runs_weekly():
    repository = build_definitions().get_repository_def()
    schedule = repository.get_schedule_def("retention_cleanup_weekly")
    assert schedule.cron_schedule == "0 4 * * 6" and schedule.job_name == "retention_cleanup"
