"""Platform-wide sensors.

- `sync_gap_sensor`: open gaps → a targeted resync run for exactly those keys. It only reads
  (a failed tick loses nothing): which gaps are due — never tried, or tried long enough ago,
  the wait doubling each attempt — and asks for one run per entity with the keys in its run
  config. The run counts the attempt before it starts, so the next tick waits; a gap out of
  attempts is declared unrecoverable by the sync's verification, with an alert naming the
  keys.
- `record_run_failures`: every failed run gets a `record_run_failure` run, which writes it to
  `sync_errors` and, for each entity it was to sync whose sync never started (a missing
  environment variable, an unreachable database), a failed sync in the audit, so the alert
  rules count failures per source and entity whatever launched the run.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from sync_platform.defs.ops.alerting import apply_alerts
from sync_platform.defs.platform.jobs import record_run_failure
from sync_platform.engine.gaps import (
    GAP_RESYNC_BACKOFF_MINUTES,
    GAP_RESYNC_MAX_ATTEMPTS,
    resync_candidates,
)
from sync_platform.orchestration.automation import sensor_interval
from sync_platform.orchestration.configuration import unconfigured_sources
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.tags import RESYNC_TAG, SOURCE_TAG, TRIGGER_TAG
from sync_platform.warehouse.connection import READ_ONLY


def resyncable_entities(repository: dg.RepositoryDefinition) -> set[tuple[str, str]]:
    """(source, entity) of every asset of a configured source that resyncs single record
    keys. Gaps of anything else (e.g. lost n8n deliveries, which `n8n_delivery_gaps`
    resyncs) are not this sensor's to act on."""
    unconfigured = unconfigured_sources(repository)
    return {
        (node.tags[SOURCE_TAG], node.key.to_user_string())
        for node in repository.asset_graph.asset_nodes
        if node.tags.get(RESYNC_TAG) == "keys"
        and SOURCE_TAG in node.tags
        and node.tags[SOURCE_TAG] not in unconfigured
    }


def resync_run_key(source: str, entity: str, attempt: int, keys: tuple[str, ...]) -> str:
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:12]
    return f"resync:{source}:{entity}:attempt-{attempt}:{digest}"


@dg.sensor(
    name="sync_gap_sensor",
    target=dg.AssetSelection.tag(RESYNC_TAG, "keys"),
    minimum_interval_seconds=sensor_interval(60),
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
    description="Every failed run is recorded in the warehouse (sync_errors, and a failed "
    "sync_runs row for each entity it never started) by a record_run_failure run.",
    request_job=record_run_failure,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=sensor_interval(30),
)
def record_run_failures(context: dg.RunFailureSensorContext):
    """A failed run gets a `record_run_failure` run (once: the run key is the failed run's
    id), which writes it to the warehouse; this sensor writes nothing itself."""
    run = context.dagster_run
    if run.job_name in (record_run_failure.name, apply_alerts.name):
        return dg.SkipReason(f"{run.job_name} records and alerts; its own failures are logged")
    message = (context.failure_event.message or "run failed")[:2000]
    return dg.RunRequest(
        run_key=f"failed-run:{run.run_id}",
        run_config={
            "ops": {"record_failure": {"config": {"run_id": run.run_id, "message": message}}}
        },
    )
