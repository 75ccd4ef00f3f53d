"""n8n events: one asset per workflow, typed from the webhook inbox (config/sources/
n8n_events.yaml), and `n8n_delivery_gaps`, which puts deliveries that never arrived back
into the inbox from the n8n executions API."""

from datetime import timedelta

import dagster as dg

from sync_platform.config import cached_source_config
from sync_platform.defs.n8n.delivery_gaps import check_workflow, gap_targets
from sync_platform.defs.n8n.resources import N8nApiResource, WebhookInboxResource, workflow_key_of
from sync_platform.engine.gaps import GAP_RESYNC_MAX_ATTEMPTS
from sync_platform.orchestration.configuration import REQUIRED_ENV_METADATA
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.source_systems import source_system_specs
from sync_platform.orchestration.sync_asset import build_sync_asset
from sync_platform.orchestration.tags import SOURCE_TAG, trigger_of
from sync_platform.runtime_config import positive_int, setting
from sync_platform.sources import shared_state
from sync_platform.sources.n8n.api import N8N_RETENTION_HOURS

N8N_EVENTS = cached_source_config("n8n_events")
n8n_events_system = source_system_specs(N8N_EVENTS)
DELIVERY_GAPS = "n8n_delivery_gaps"
NO_LOST_DELIVERIES = "no_lost_deliveries"
GAP_LOOKBACK_HOURS = setting(
    "n8n_gap_lookback_hours",
    N8N_RETENTION_HOURS,
    positive_int,
    "hours of n8n executions the delivery-gap check compares with the inbox; when set, it "
    "overrides N8N_GAP_LOOKBACK_HOURS (default: n8n's retention, 336 h)",
)


event_assets = [
    build_sync_asset(
        N8N_EVENTS,
        entity,
        WebhookInboxResource,
        retry_policy=None,  # the inbox keeps what a failed run did not mark: re-run safely
        upstream=(DELIVERY_GAPS,),
    )
    for entity in N8N_EVENTS.entities.values()
]
ASSET_BY_WORKFLOW = {
    workflow_key_of(entity): dg.AssetKey(entity.name) for entity in N8N_EVENTS.entities.values()
}


@dg.asset(
    name=DELIVERY_GAPS,
    group_name=N8N_EVENTS.source,
    description="Successful n8n executions whose webhook never reached the inbox, resynced "
    "into it from the n8n executions API (bounded attempts; lost deliveries alert).",
    kinds={"python"},
    tags={SOURCE_TAG: "n8n"},
    metadata={REQUIRED_ENV_METADATA: ",".join(N8nApiResource.required_env)},
    pool="n8n_delivery_gaps",
    deps=[spec.key for spec in n8n_events_system],  # their executions, from the n8n API
    check_specs=[
        dg.AssetCheckSpec(
            NO_LOST_DELIVERIES,
            asset=DELIVERY_GAPS,
            description="no successful execution's delivery is pruned or unrecoverable",
        )
    ],
)
def n8n_delivery_gaps(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, n8n_api: N8nApiResource
) -> dg.MaterializeResult:
    engine = warehouse.ready_engine()
    shared_state.share_through(engine)
    with engine.connect() as connection:
        hours = GAP_LOOKBACK_HOURS.read_stored(connection) or n8n_api.gap_lookback_hours
        lookback = timedelta(hours=hours)
        max_attempts = GAP_RESYNC_MAX_ATTEMPTS.read(connection)
    targets, problems, not_configured = gap_targets()
    for problem in problems:
        context.log.warning(problem)
    if not_configured:
        context.log.info(f"not configured here (no secret): {', '.join(not_configured)}")
    metadata: dict[str, object] = {"lookback_hours": lookback.total_seconds() / 3600}
    lost: dict[str, list[str]] = {}
    with n8n_api.client() as client:
        for target in targets:
            result = check_workflow(
                engine,
                client,
                target,
                lookback=lookback,
                max_attempts=max_attempts,
                max_reads=n8n_api.gap_max_reads,
                trigger=trigger_of(context.run.tags),
                dagster_run_id=context.run.run_id,
            )
            trouble = result.lost or result.retrying or result.failed or result.unchecked_period
            log = context.log.warning if trouble else context.log.info
            log(f"{target.workflow_key}: {result.summary()}")
            key = target.workflow_key
            metadata[f"{key}/listed"] = result.listed
            metadata[f"{key}/read"] = result.read
            metadata[f"{key}/missing"] = len(result.missing)
            metadata[f"{key}/resynced"] = len(result.resynced)
            if result.deferred:
                metadata[f"{key}/deferred"] = result.deferred
            if result.failed:
                metadata[f"{key}/failed_executions"] = len(result.failed)
                metadata[f"{key}/resent"] = len(result.resent)
            if result.unchecked_period:
                start, end = (m.isoformat() for m in result.unchecked_period)
                metadata[f"{key}/unchecked_period"] = f"{start} .. {end}"
            if result.lost:
                lost[key] = result.lost
    if problems:
        metadata["not_checked"] = "; ".join(problems)
    if not_configured:
        metadata["not_configured"] = ", ".join(not_configured)
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=NO_LOST_DELIVERIES,
                passed=not lost,
                metadata={"lost_executions": dg.MetadataValue.json(lost)},
                description="see the webhook_delivery_lost alert" if lost else None,
            )
        ],
    )
