"""A 5-minute safety net for anything left pending in the inbox, and the hourly delivery-gap
resync."""

import dagster as dg

from sync_platform.defs.n8n.jobs import (
    event_assets_for,
    n8n_gap_resync,
    process_webhooks,
    processing_in_progress,
)
from sync_platform.defs.n8n.resources import N8nApiResource
from sync_platform.inbox.processing import pending_by_workflow
from sync_platform.orchestration.automation import RUNNING_IN_UTC, cadence, utc_schedule
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.tags import TRIGGER_TAG


@dg.schedule(
    name="webhook_inbox_every_5_minutes",
    job=process_webhooks,
    cron_schedule=cadence("*/5 * * * *"),
    **RUNNING_IN_UTC,
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
    assets = event_assets_for(pending, context.log)
    if not assets:
        return dg.SkipReason("no event table for the pending deliveries")
    return dg.RunRequest(asset_selection=assets, tags={TRIGGER_TAG: "scheduled"})


n8n_gap_resync_schedule = utc_schedule(
    "n8n_gap_resync_hourly",
    n8n_gap_resync,
    "17 * * * *",
    requires=N8nApiResource.required_env,
    description="Hourly: well inside n8n's 14-day execution retention, so a lost delivery is "
    "found while its execution data still exists.",
)
