"""Platform-wide sensors and run tagging."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from sync_platform.definitions import build_definitions
from sync_platform.defs.platform.jobs import unstarted_by_their_own_failure
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.tags import trigger_of
from sync_platform.warehouse.platform_tables import sync_errors
from sync_platform_tests.dagster_runs import failure_sensor_decision, fast_resources, run_job


def test_trigger_is_read_from_run_tags():
    assert trigger_of({}) == "manual"
    assert trigger_of({"dagster/schedule_name": "dealer_sync_every_15_minutes"}) == "scheduled"
    assert trigger_of({"dagster/sensor_name": "x"}) == "sensor"
    assert trigger_of({"dagster/backfill": "abc", "dagster/schedule_name": "y"}) == "backfill"
    assert trigger_of({"sync_platform/trigger": "resync", "dagster/sensor_name": "x"}) == "resync"
    # a trigger tag a person set by hand is a manual run, not a violated audit constraint
    assert trigger_of({"sync_platform/trigger": "soak"}) == "manual"


def test_a_failed_run_is_recorded_once_with_its_reason(source_env, warehouse_url):
    source_env.faults(down=True)
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(instance=instance)
    assert not result.success
    request = failure_sensor_decision(result, instance)  # decides only: a run to record it
    assert request.run_key == f"failed-run:{result.run_id}"
    warehouse = WarehouseResource(url=warehouse_url)
    with warehouse.get_engine().connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(sync_errors)).scalar()
        before = connection.execute(
            sa.select(sa.func.count()).where(sync_errors.c.sync_run_id.is_(None))
        ).scalar()
    assert before == 0  # nothing written by the sensor
    recorder = build_definitions(fast_resources()).resolve_job_def("record_run_failure")
    for _ in range(2):  # a second run for the same failure (a retry) adds nothing
        assert recorder.execute_in_process(run_config=request.run_config, instance=instance).success

    with warehouse.get_engine().connect() as connection:
        rows = (
            connection.execute(sa.select(sync_errors).where(sync_errors.c.sync_run_id.is_(None)))
            .mappings()
            .all()
        )
    assert len(rows) == 1
    assert rows[0]["dagster_run_id"] == result.run_id
    assert "dealer_sync" in rows[0]["message"] and rows[0]["source"] == "dealer_feed"


def test_the_recorder_does_not_record_its_own_failures():
    instance = dg.DagsterInstance.ephemeral()
    recorder = build_definitions().resolve_job_def("record_run_failure")
    result = recorder.execute_in_process(
        run_config={"ops": {"record_failure": {"config": {"run_id": "no-such-run"}}}},
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    # a run that is not there is not waited for: no retries (30 s apart)
    retried = [
        e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]
    assert retried == []
    # no loop of recorders
    assert isinstance(failure_sensor_decision(result, instance), dg.SkipReason)


@dg.asset
def _fails() -> None:
    raise RuntimeError("the source is down")


@dg.asset(deps=[_fails])
def _downstream() -> None:
    return None


@dg.asset
def _unrelated() -> None:
    return None


def test_a_failed_run_counts_only_the_entities_whose_own_source_failed():
    """A step skipped because a step of another source upstream failed, or one that
    succeeded, is not a failure of its source; one of the failed step's own source is; a run
    that died before any step started is a failure of all it planned."""
    defs = dg.Definitions(assets=[_fails, _downstream, _unrelated])
    job = defs.resolve_implicit_global_asset_job_def()
    sources = {"_fails": "crm", "_unrelated": "erp"}
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        other_source = sources | {"_downstream": "webhooks"}
        assert unstarted_by_their_own_failure(instance, result.run_id, other_source) == {"_fails"}
        same_source = sources | {"_downstream": "crm"}
        assert unstarted_by_their_own_failure(instance, result.run_id, same_source) == {
            "_fails",
            "_downstream",
        }

        never_started = instance.create_run_for_job(
            job,
            asset_selection=frozenset({dg.AssetKey("_fails"), dg.AssetKey("_unrelated")}),
        )
        instance.report_run_failed(never_started)
        assert unstarted_by_their_own_failure(instance, never_started.run_id, sources) == {
            "_fails",
            "_unrelated",
        }
