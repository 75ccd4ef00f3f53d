"""Checks of the GA4 reports: schema and quarantine (one op for the source), completeness from
the data, and freshness of yesterday's partition.

Completeness is judged from the data, not from the schedule's memory: Dagster's partitioned
schedules catch up only a few missed ticks after the daemon was down, so a check lists the
days that are due and have no materialization (and `ga4_missing_partitions_sensor` asks for
exactly those). A day is due once the nightly run that owns it has had its chance: from
04:00 UTC the next day (the run starts at 02:00), the same deadline the freshness check has.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from sync_platform.defs.ga4.assets import GA4, GA4_PARTITIONS, GA4_REPORTS
from sync_platform.orchestration.checks import entity_checks

MAX_SHOWN = 30
DEADLINE_CRON = "0 4 * * *"  # yesterday is due by 04:00 UTC (the nightly run starts at 02:00)
DUE_AFTER_MIDNIGHT = timedelta(hours=4)

ga4_checks = entity_checks(GA4)


def due_days(now: datetime) -> list[str]:
    """Days from the first partition whose nightly run should have happened by `now`."""
    return GA4_PARTITIONS.get_partition_keys(current_time=now - DUE_AFTER_MIDNIGHT)


def missing_days(instance: dg.DagsterInstance, asset: str, now: datetime) -> list[str]:
    """Due days (`due_days`) with no materialization of `asset`."""
    done = instance.get_materialized_partitions(dg.AssetKey(asset))
    return [day for day in due_days(now) if day not in done]


@dg.multi_asset_check(
    name="ga4_partitions_complete",
    specs=[
        dg.AssetCheckSpec(
            "partitions_complete",
            asset=report.name,
            description="every day from partition_start to yesterday has been synced (yesterday "
            "from 04:00 UTC, once the nightly run has had its chance)",
        )
        for report in GA4_REPORTS
    ],
    can_subset=True,
)
def ga4_partitions_complete(context: dg.AssetCheckExecutionContext):
    now = datetime.now(UTC)
    for check in context.selected_asset_check_keys:
        missing = missing_days(context.instance, check.asset_key.path[-1], now)
        yield dg.AssetCheckResult(
            asset_key=check.asset_key,
            check_name=check.name,
            passed=not missing,
            severity=dg.AssetCheckSeverity.WARN,
            description=None if not missing else f"{len(missing)} day(s) never synced",
            metadata={
                "missing_days": len(missing),
                "first_missing": ", ".join(missing[:MAX_SHOWN]),
            },
        )


ga4_freshness_checks = dg.build_time_partition_freshness_checks(
    assets=[dg.AssetKey(name) for name in ("ga4_daily_traffic", "ga4_daily_totals")],
    deadline_cron=DEADLINE_CRON,
    timezone="UTC",
    severity=dg.AssetCheckSeverity.ERROR,
)
