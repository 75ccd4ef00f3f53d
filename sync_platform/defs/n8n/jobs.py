"""`process_webhooks` types pending deliveries into the event tables; `n8n_gap_resync` first
puts back deliveries that never arrived. Both are safe to re-run."""

import dagster as dg

from sync_platform.defs.n8n.assets import ASSET_BY_WORKFLOW, DELIVERY_GAPS
from sync_platform.orchestration.automation import source_job
from sync_platform.orchestration.runs import unfinished

EVENT_ASSETS = dg.AssetSelection.assets(*ASSET_BY_WORKFLOW.values())

process_webhooks = source_job(
    "process_webhooks",
    EVENT_ASSETS,
    source="n8n_events",
    description="Type, validate and load pending webhook deliveries from the inbox into the "
    "event tables (launched by webhook_inbox_sensor; safe to re-run).",
)

n8n_gap_resync = source_job(
    "n8n_gap_resync",
    dg.AssetSelection.assets(DELIVERY_GAPS) | EVENT_ASSETS,
    source="n8n_events",
    description="Resync deliveries n8n ran but the receiver never got, then process them.",
)


def processing_in_progress(instance: dg.DagsterInstance) -> bool:
    """A processing run already queued or running takes what is pending when it starts."""
    return unfinished(instance, process_webhooks.name)


def event_assets_for(workflows: dict[str, int], log) -> list[dg.AssetKey]:
    """The event assets of these workflows; pending deliveries of a workflow without an
    event table are logged (they wait in the inbox until one is configured)."""
    unknown = sorted(set(workflows) - set(ASSET_BY_WORKFLOW))
    if unknown:
        log.warning(
            f"pending deliveries of workflows with no event table: {', '.join(unknown)} "
            "(add an entity for them to config/sources/n8n_events.yaml)"
        )
    return [ASSET_BY_WORKFLOW[key] for key in sorted(workflows) if key in ASSET_BY_WORKFLOW]
