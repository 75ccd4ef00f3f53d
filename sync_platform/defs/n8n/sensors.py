"""`webhook_inbox_sensor`: a processing run as soon as the inbox has new deliveries."""

import dagster as dg

from sync_platform.defs.n8n.jobs import event_assets_for, process_webhooks, processing_in_progress
from sync_platform.inbox.processing import pending_by_workflow
from sync_platform.orchestration.automation import sensor_interval
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.tags import TRIGGER_TAG


@dg.sensor(
    name="webhook_inbox_sensor",
    job=process_webhooks,
    minimum_interval_seconds=sensor_interval(30),
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
    assets = event_assets_for(new, context.log)
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
