"""Record every failed run in the warehouse's `sync_errors`, including runs that died
before the sync engine started (a missing environment variable, an unreachable database),
which therefore have no audit row of their own; and raise a high alert when the last
`alert_consecutive_failures` runs of a job all failed."""

import dagster as dg
import sqlalchemy as sa

from sync_platform.alerting.rules import CONSECUTIVE_FAILURES
from sync_platform.alerting.store import raise_alert
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.warehouse.platform_tables import sync_errors


@dg.run_failure_sensor(
    name="record_run_failures",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def record_run_failures(context: dg.RunFailureSensorContext, warehouse: WarehouseResource):
    run = context.dagster_run
    message = context.failure_event.message or "run failed"
    with warehouse.get_engine().begin() as connection:
        already = connection.execute(
            sa.select(sa.func.count())
            .select_from(sync_errors)
            .where(sync_errors.c.dagster_run_id == run.run_id, sync_errors.c.entity.is_(None))
        ).scalar()
        if not already:
            connection.execute(
                sa.insert(sync_errors).values(
                    dagster_run_id=run.run_id,
                    source=run.tags.get("sync_platform/source"),
                    category="unknown",
                    message=f"run {run.run_id} of job {run.job_name} failed: {message}",
                    occurred_at=sa.func.now(),
                )
            )
        limit = CONSECUTIVE_FAILURES.read(connection)
        latest = context.instance.get_runs(
            filters=dg.RunsFilter(job_name=run.job_name), limit=limit
        )
        if len(latest) == limit and all(r.status == dg.DagsterRunStatus.FAILURE for r in latest):
            raise_alert(
                connection,
                severity="high",
                type="consecutive_failures",
                message=f"job {run.job_name}: the last {limit} runs failed (latest {run.run_id}: "
                f"{message}). Open the run in the Dagster UI; runbook: docs/operations.md",
                dedup_key=f"job_failures:{run.job_name}",
                details={"runs": [r.run_id for r in latest]},
            )
