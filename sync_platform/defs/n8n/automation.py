"""What starts webhook processing: a sensor reacting to new inbox rows, a 5-minute safety net
for anything left pending, and the hourly delivery-gap resync."""

import dagster as dg

from sync_platform.defs.n8n.assets import ASSET_BY_WORKFLOW
from sync_platform.defs.n8n.jobs import n8n_gap_resync, process_webhooks
from sync_platform.inbox.processing import pending_by_workflow
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.sync_asset import TRIGGER_TAG

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def processing_in_progress(instance: dg.DagsterInstance) -> bool:
    """A processing run already queued or running takes what is pending when it starts."""
    runs = instance.get_run_records(
        filters=dg.RunsFilter(job_name=process_webhooks.name, statuses=IN_PROGRESS), limit=1
    )
    return bool(runs)


def _assets_for(workflows: dict[str, int], log) -> list[dg.AssetKey]:
    unknown = sorted(set(workflows) - set(ASSET_BY_WORKFLOW))
    if unknown:
        log.warning(
            f"pending deliveries of workflows with no event table: {', '.join(unknown)} "
            "(add an entity for them to config/sources/n8n_events.yaml)"
        )
    return [ASSET_BY_WORKFLOW[key] for key in sorted(workflows) if key in ASSET_BY_WORKFLOW]


@dg.sensor(
    name="webhook_inbox_sensor",
    job=process_webhooks,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches a processing run when the inbox has new deliveries "
    "(cursor: the last inbox id seen; one run key per batch).",
)
def webhook_inbox_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    last_seen = int(context.cursor or 0)
    new = pending_by_workflow(warehouse.get_engine(), after_id=last_seen)
    if not new:
        return dg.SkipReason(f"no new deliveries after inbox id {last_seen}")
    if processing_in_progress(context.instance):
        return dg.SkipReason("a processing run is in progress; its successor waits for it")
    newest = max(new.values())
    assets = _assets_for(new, context.log)
    if not assets:
        return dg.SensorResult(
            skip_reason="no event table for the new deliveries", cursor=str(newest)
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"inbox:{last_seen + 1}-{newest}",
                asset_selection=assets,
                tags={TRIGGER_TAG: "sensor"},
            )
        ],
        cursor=str(newest),
    )


@dg.schedule(
    name="webhook_inbox_every_5_minutes",
    job=process_webhooks,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Safety net: processes deliveries still pending (a failed run, a batch limit, "
    "a sensor that was off).",
)
def webhook_inbox_safety_net(
    context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource
) -> dg.RunRequest | dg.SkipReason:
    pending = pending_by_workflow(warehouse.get_engine())
    if not pending:
        return dg.SkipReason("nothing pending in the webhook inbox")
    if processing_in_progress(context.instance):
        return dg.SkipReason("a processing run is in progress")
    assets = _assets_for(pending, context.log)
    if not assets:
        return dg.SkipReason("no event table for the pending deliveries")
    return dg.RunRequest(asset_selection=assets, tags={TRIGGER_TAG: "scheduled"})


n8n_gap_resync_schedule = dg.ScheduleDefinition(
    name="n8n_gap_resync_hourly",
    job=n8n_gap_resync,
    cron_schedule="17 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: well inside n8n's 14-day execution retention, so a lost delivery is "
    "found while its execution data still exists.",
)
