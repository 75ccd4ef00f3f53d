"""`full_sync`: every unpartitioned source entity, the demo's main job; `record_run_failure`:
a failed run recorded in the warehouse."""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from sync_platform.config import all_source_configs
from sync_platform.engine import audit
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.tags import (
    AREA_TAG,
    LAYER_TAG,
    PARTITIONING_TAG,
    SOURCE_TAG,
    trigger_of,
)

full_sync = dg.define_asset_job(
    "full_sync",
    selection=dg.AssetSelection.tag(LAYER_TAG, "source")
    - dg.AssetSelection.tag(PARTITIONING_TAG, "daily"),
    tags={AREA_TAG: "all_sources"},
    description="Every unpartitioned source entity, in dependency order (the demo's main job). "
    "Daily-partitioned sources (GA4) run by partition: see their own jobs.",
)


def step_errors(instance: dg.DagsterInstance, run_id: str, most: int = 3) -> list[str]:
    """What failed steps said (the run's own failure only names the steps)."""
    failures = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=most
    ).records
    found = []
    for record in failures:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None)
        text = error.message.strip() if error else "failed"
        found.append(f"{event.step_key}: {text[:300]}")
    return found


def unstarted_by_their_own_failure(
    instance: dg.DagsterInstance, run_id: str, source_of: dict[str, str]
) -> set[str]:
    """The assets of a failed run whose own step failed, with those of the same source left
    out behind them (`source_of`: asset → source); every planned asset when no step started
    (the run died before any work). An asset of another source left out because a step
    upstream of it failed is not counted: its source did nothing wrong."""
    planned = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    started = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_START, limit=1
    ).records
    failed_steps = {
        record.event_log_entry.step_key
        for record in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_FAILURE
        ).records
    }
    step_of = {
        record.event_log_entry.dagster_event.asset_key.to_user_string(): (
            record.event_log_entry.step_key
        )
        for record in planned
    }
    if not started:
        return set(step_of)
    failed = {asset for asset, step in step_of.items() if step in failed_steps}
    sources = {source_of[asset] for asset in failed if asset in source_of}
    return failed | {asset for asset in step_of if source_of.get(asset) in sources}


class FailedRunConfig(dg.Config):
    run_id: str = Field(description="the failed Dagster run")
    message: str = Field(default="run failed", description="why it failed, as Dagster said")


@dg.op(tags={AREA_TAG: "alerting"}, retry_policy=dg.RetryPolicy(max_retries=3, delay=30))
def record_failure(
    context: dg.OpExecutionContext, config: FailedRunConfig, warehouse: WarehouseResource
) -> None:
    """The failed run in `sync_errors`, and a failed sync in the audit for each entity whose
    own step failed before its sync started (`unstarted_by_their_own_failure`), so the alert
    rules count failures per source and entity, whichever job or sensor launched the run."""
    run = context.instance.get_run_by_id(config.run_id)
    if run is None:
        # not transient: retrying (the policy is for a warehouse that is briefly away) cannot help
        raise dg.Failure(f"run {config.run_id} is not in this instance", allow_retries=False)
    source_of = {
        entity: source.source for source in all_source_configs() for entity in source.entities
    }
    names = unstarted_by_their_own_failure(context.instance, config.run_id, source_of)
    entities = sorted((source_of[name], name) for name in names if name in source_of)
    message = f"run {run.run_id} of job {run.job_name} failed: {config.message}"
    if causes := step_errors(context.instance, config.run_id):
        message += f" ({'; '.join(causes)})"
    with warehouse.ready_engine().begin() as connection:
        audit.record_run_failure(
            connection,
            dagster_run_id=run.run_id,
            source=run.tags.get(SOURCE_TAG),
            message=message,
        )
        recorded = audit.record_unstarted_syncs(
            connection,
            entities,
            dagster_run_id=run.run_id,
            trigger=trigger_of(run.tags),
            message=f"the sync never started: {message}",
            now=datetime.now(UTC),
        )
    added = ", ".join(f"{source}.{entity}" for source, entity in recorded) or "no entity"
    context.log.info(f"recorded run {run.run_id}; failed syncs added for {added}")


@dg.job(
    tags={AREA_TAG: "alerting"},
    description="Record a failed run in the warehouse (requested by record_run_failures).",
)
def record_run_failure():
    record_failure()
