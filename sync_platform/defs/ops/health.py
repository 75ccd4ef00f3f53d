"""`sync_health`: the health report as an asset, materialized every 15 minutes, so the UI
shows it (markdown) and plots its numbers over time."""

from datetime import UTC, datetime

import dagster as dg

from sync_platform.alerting.health import as_markdown, health_report
from sync_platform.config import all_source_configs
from sync_platform.orchestration.automation import utc_schedule
from sync_platform.orchestration.configuration import unconfigured_sources
from sync_platform.orchestration.tags import AREA_TAG
from sync_platform.warehouse.connection import READ_ONLY


def schedules_by_source(repository: dg.RepositoryDefinition) -> dict[str, list[tuple[str, str]]]:
    """source → [(cron, timezone)] of the schedules whose job syncs it (job tag)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for schedule in repository.schedule_defs:
        source = schedule.job.tags.get("sync_platform/source") if schedule.job else None
        if source and isinstance(schedule.cron_schedule, str):
            found.setdefault(source, []).append(
                (schedule.cron_schedule, schedule.execution_timezone or "UTC")
            )
    return found


@dg.asset(
    key="sync_health",
    group_name="platform",
    description="Per entity: last success, next run, success rates, gaps, quarantine, "
    "duration trend; recent alerts; top quality issues with what to do.",
    required_resource_keys={"warehouse"},
    kinds={"python"},
)
def sync_health(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    engine = context.resources.warehouse.ready_engine()
    repository = context.repository_def
    schedules = schedules_by_source(repository)
    with engine.connect().execution_options(**READ_ONLY) as connection, connection.begin():
        report = health_report(
            connection,
            all_source_configs(),
            schedules,
            datetime.now(UTC),
            not_configured=unconfigured_sources(repository),
        )
    entities = report["entities"]
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(as_markdown(report)),
            "healthy": report["healthy"],
            "healthy_entities": sum(e["healthy"] for e in entities),
            "unhealthy_entities": sum(not e["healthy"] for e in entities),
            "open_gaps": sum(e["open_gaps"] for e in entities),
            "quarantined_24h": sum(e["quarantined_24h"] for e in entities),
            "open_high_alerts": report["open_high_alerts"],
            "sources_not_configured": len(report["not_configured"]),
        }
    )


sync_health_job = dg.define_asset_job(
    "sync_health_report", selection=[dg.AssetKey("sync_health")], tags={AREA_TAG: "health"}
)
sync_health_schedule = utc_schedule(
    "sync_health_every_15_minutes",
    sync_health_job,
    "*/15 * * * *",
    description="Every 15 minutes: the health report (sync_health), as `sync-platform health`.",
)
