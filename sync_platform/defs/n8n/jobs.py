import dagster as dg

from sync_platform.defs.n8n.assets import ASSET_BY_WORKFLOW, DELIVERY_GAPS
from sync_platform.orchestration.sync_asset import SOURCE_TAG

EVENT_ASSETS = dg.AssetSelection.assets(*ASSET_BY_WORKFLOW.values())

process_webhooks = dg.define_asset_job(
    "process_webhooks",
    selection=EVENT_ASSETS,
    description="Type, validate and load pending webhook deliveries from the inbox into the "
    "event tables (launched by webhook_inbox_sensor; safe to re-run).",
    tags={SOURCE_TAG: "n8n_events"},
)

n8n_gap_resync = dg.define_asset_job(
    "n8n_gap_resync",
    selection=dg.AssetSelection.assets(DELIVERY_GAPS) | EVENT_ASSETS,
    description="Resync deliveries n8n ran but the receiver never got, then process them.",
    tags={SOURCE_TAG: "n8n_events"},
)
