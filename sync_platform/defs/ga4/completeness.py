"""Completeness of GA4 from the data, not from the schedule's memory.

Dagster's partitioned schedules catch up only a few missed ticks after the daemon was down,
so a check lists the days before today that have no materialization, and a sensor asks for
exactly those (one range run per report, bounded per tick).
"""

from datetime import UTC, datetime

import dagster as dg

from sync_platform.defs.ga4.assets import GA4_PARTITIONS, GA4_REPORTS
from sync_platform.orchestration.sync_asset import SOURCE_TAG, TRIGGER_TAG

MAX_DAYS_PER_REQUEST = 31
MAX_SHOWN = 30


def missing_days(instance: dg.DagsterInstance, asset: str, now: datetime) -> list[str]:
    """Days from the first partition to yesterday (UTC) with no materialization."""
    expected = GA4_PARTITIONS.get_partition_keys(current_time=now)
    done = instance.get_materialized_partitions(dg.AssetKey(asset))
    return [day for day in expected if day not in done]


def first_block(days: list[str], limit: int) -> tuple[str, str]:
    """The first run of consecutive missing days, at most `limit` long."""
    start = end = days[0]
    keys = GA4_PARTITIONS.get_partition_keys()
    position = keys.index(start)
    for day in days[1:limit]:
        position += 1
        if position >= len(keys) or keys[position] != day:
            break
        end = day
    return start, end


@dg.multi_asset_check(
    name="ga4_partitions_complete",
    specs=[
        dg.AssetCheckSpec(
            "partitions_complete",
            asset=report.name,
            description="every day from partition_start to yesterday has been synced",
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


@dg.sensor(
    name="ga4_missing_partitions_sensor",
    target=dg.AssetSelection.groups("ga4"),
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests runs for GA4 days that were never synced (a block per report per tick).",
)
def ga4_missing_partitions_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    now = datetime.now(UTC)
    requests = []
    for report in GA4_REPORTS:
        missing = missing_days(context.instance, report.name, now)
        if not missing:
            continue
        start, end = first_block(missing, MAX_DAYS_PER_REQUEST)
        requests.append(
            dg.RunRequest(
                run_key=f"ga4-missing:{report.name}:{start}:{end}:{now:%Y%m%d%H}",
                asset_selection=[dg.AssetKey(report.name)],
                tags={
                    "dagster/asset_partition_range_start": start,
                    "dagster/asset_partition_range_end": end,
                    TRIGGER_TAG: "backfill",
                    SOURCE_TAG: "ga4",
                },
            )
        )
    return dg.SensorResult(run_requests=requests, cursor=now.isoformat())
