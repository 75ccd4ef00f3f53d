"""Sensors of GA4: days that are due and were never synced get a run of `ga4_daily` (reports
and the marts built on them), and the freshness checks of yesterday's partition are
evaluated."""

from datetime import UTC, datetime

import dagster as dg

from sync_platform.defs.ga4.assets import GA4_PARTITIONS, GA4_REPORTS
from sync_platform.defs.ga4.checks import ga4_freshness_checks, missing_days
from sync_platform.defs.ga4.jobs import ga4_daily
from sync_platform.defs.ga4.resources import GA4Resource
from sync_platform.orchestration.automation import not_configured, sensor_interval
from sync_platform.orchestration.runs import UNFINISHED
from sync_platform.orchestration.tags import SOURCE_TAG, TRIGGER_TAG

SENSOR_NAME = "ga4_missing_partitions_sensor"
MAX_DAYS_PER_REQUEST = 31
MAX_ATTEMPTS = 3  # runs of one missing block; after that the completeness check says so
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


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


def missing_block_request(
    instance: dg.DagsterInstance, now: datetime
) -> dg.RunRequest | dg.SkipReason:
    """One `ga4_daily` run over the first block of due days some report lacks, unless a run
    for that block is unfinished or its attempts are used up. The run key counts the earlier
    runs of the block, so a failed block is asked for again, the same block is never asked
    for twice at once, and the key does not change with the clock."""
    missing = sorted(
        {day for report in GA4_REPORTS for day in missing_days(instance, report.name, now)}
    )
    if not missing:
        return dg.SkipReason("every due GA4 day is synced")
    start, end = first_block(missing, MAX_DAYS_PER_REQUEST)
    earlier = instance.get_run_records(
        filters=dg.RunsFilter(
            job_name=ga4_daily.name,
            tags={"dagster/sensor_name": SENSOR_NAME, RANGE_START: start, RANGE_END: end},
        )
    )
    if any(record.dagster_run.status in UNFINISHED for record in earlier):
        return dg.SkipReason(f"the run for {start}…{end} is not finished yet")
    if len(earlier) >= MAX_ATTEMPTS:
        return dg.SkipReason(
            f"{start}…{end} is still missing after {len(earlier)} runs: see their errors "
            "(each report's partitions_complete check lists the days)"
        )
    return dg.RunRequest(
        run_key=f"ga4-missing:{start}:{end}:run-{len(earlier) + 1}",
        tags={RANGE_START: start, RANGE_END: end, TRIGGER_TAG: "backfill", SOURCE_TAG: "ga4"},
    )


@dg.sensor(
    name=SENSOR_NAME,
    job=ga4_daily,
    minimum_interval_seconds=sensor_interval(600),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a ga4_daily run (reports and marts) for the first block of due GA4 "
    "days that were never synced; a day is due from 04:00 UTC the day after.",
)
def ga4_missing_partitions_sensor(
    context: dg.SensorEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    return not_configured(GA4Resource.required_env) or missing_block_request(
        context.instance, datetime.now(UTC)
    )


ga4_freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=ga4_freshness_checks,
    name="ga4_freshness_sensor",
    minimum_interval_seconds=sensor_interval(600),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
