"""Sensors of GA4: days never synced get a run (a block per report per tick), and the
freshness checks of yesterday's partition are evaluated."""

from datetime import UTC, datetime

import dagster as dg

from sync_platform.defs.ga4.assets import GA4_PARTITIONS, GA4_REPORTS
from sync_platform.defs.ga4.checks import ga4_freshness_checks, missing_days
from sync_platform.orchestration.tags import SOURCE_TAG, TRIGGER_TAG

MAX_DAYS_PER_REQUEST = 31


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


ga4_freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=ga4_freshness_checks,
    name="ga4_freshness_sensor",
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
