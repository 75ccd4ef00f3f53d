"""Platform-wide sensors.

- `sync_gap_sensor`: open gaps → a targeted resync run for exactly those keys. It only reads
  (a failed tick loses nothing): which gaps are due — never tried, or tried long enough ago,
  the wait doubling each attempt — and asks for one run per entity with the keys in its run
  config. The run counts the attempt before it starts, so the next tick waits; a gap out of
  attempts is declared unrecoverable by the sync's verification, with an alert naming the
  keys.
- `record_run_failures`: every failed run in the warehouse's `sync_errors`, including runs
  that died before the sync engine started (a missing environment variable, an unreachable
  database), which therefore have no audit row of their own; and a high alert when the last
  `alert_consecutive_failures` runs of a job all failed.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from sync_platform.alerting.rules import CONSECUTIVE_FAILURES
from sync_platform.alerting.store import raise_alert
from sync_platform.engine import audit
from sync_platform.engine.gaps import (
    GAP_RESYNC_BACKOFF_MINUTES,
    GAP_RESYNC_MAX_ATTEMPTS,
    resync_candidates,
)
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.tags import RESYNC_TAG, SOURCE_TAG, TRIGGER_TAG
from sync_platform.warehouse.connection import READ_ONLY


def resyncable_entities(repository: dg.RepositoryDefinition) -> set[tuple[str, str]]:
    """(source, entity) of every asset that resyncs single record keys. Gaps of anything
    else (e.g. lost n8n deliveries, which `n8n_delivery_gaps` resyncs) are not this
    sensor's to act on."""
    return {
        (node.tags[SOURCE_TAG], node.key.to_user_string())
        for node in repository.asset_graph.asset_nodes
        if node.tags.get(RESYNC_TAG) == "keys" and SOURCE_TAG in node.tags
    }


def resync_run_key(source: str, entity: str, attempt: int, keys: tuple[str, ...]) -> str:
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:12]
    return f"resync:{source}:{entity}:attempt-{attempt}:{digest}"


@dg.sensor(
    name="sync_gap_sensor",
    target=dg.AssetSelection.tag(RESYNC_TAG, "keys"),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches a targeted resync for open sync gaps (bounded attempts, backoff).",
)
def sync_gap_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult:
    engine = warehouse.get_engine()
    now = datetime.now(UTC)
    with engine.connect().execution_options(**READ_ONLY) as connection, connection.begin():
        candidates = resync_candidates(
            connection,
            max_attempts=GAP_RESYNC_MAX_ATTEMPTS.read(connection),
            backoff=timedelta(minutes=GAP_RESYNC_BACKOFF_MINUTES.read(connection)),
            now=now,
            entities=resyncable_entities(context.repository_def),
        )
    requests = [
        dg.RunRequest(
            run_key=resync_run_key(c.source, c.entity, c.attempt, c.keys),
            asset_selection=[dg.AssetKey(c.entity)],
            run_config={"ops": {c.entity: {"config": {"resync_keys": list(c.keys)}}}},
            tags={TRIGGER_TAG: "resync", SOURCE_TAG: c.source},
        )
        for c in candidates
    ]
    for request in requests:
        context.log.info(f"requesting {request.run_key}")
    cursor = json.dumps({"evaluated_at": now.isoformat(), "requested": len(requests)})
    return dg.SensorResult(run_requests=requests, cursor=cursor)


@dg.run_failure_sensor(
    name="record_run_failures",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def record_run_failures(context: dg.RunFailureSensorContext, warehouse: WarehouseResource):
    run = context.dagster_run
    message = context.failure_event.message or "run failed"
    with warehouse.get_engine().begin() as connection:
        audit.record_run_failure(
            connection,
            dagster_run_id=run.run_id,
            source=run.tags.get(SOURCE_TAG),
            message=f"run {run.run_id} of job {run.job_name} failed: {message}",
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
