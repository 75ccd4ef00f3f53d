"""Yesterday plus a lookback every night (GA4 revises recent days), and a weekly re-pull of
the last 30 days for late revisions. Both request a partition range: one run, one GA4
request per report for the whole range."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from sync_platform.defs.ga4.jobs import ga4_daily
from sync_platform.defs.ga4.resources import GA4Resource
from sync_platform.orchestration.automation import RUNNING_IN_UTC, cadence, not_configured
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.runtime_config import non_negative_int, setting
from sync_platform.warehouse.connection import READ_ONLY

LOOKBACK_DAYS = setting(
    "ga4_lookback_days",
    3,
    non_negative_int,
    "days before yesterday the nightly GA4 run pulls again",
)


def range_request(days_back: int, now: datetime, kind: str) -> dg.RunRequest:
    """yesterday - days_back … yesterday (UTC)."""
    yesterday = (now - timedelta(days=1)).date()
    start = yesterday - timedelta(days=days_back)
    return dg.RunRequest(
        run_key=f"ga4-{kind}:{start}:{yesterday}",
        tags={
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": yesterday.isoformat(),
        },
    )


@dg.schedule(
    name="ga4_daily_with_lookback",
    job=ga4_daily,
    cron_schedule=cadence("0 2 * * *"),
    **RUNNING_IN_UTC,
    description="02:00 UTC: yesterday and the ga4_lookback_days before it.",
)
def ga4_daily_with_lookback(
    context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource
) -> dg.RunRequest | dg.SkipReason:
    if skip := not_configured(GA4Resource.required_env):
        return skip
    with warehouse.get_engine().connect().execution_options(**READ_ONLY) as connection:
        lookback = LOOKBACK_DAYS.read(connection)
    now = context.scheduled_execution_time or datetime.now(UTC)
    return range_request(lookback, now, "daily")


@dg.schedule(
    name="ga4_weekly_repull_30_days",
    job=ga4_daily,
    cron_schedule=cadence("0 3 * * 1"),
    **RUNNING_IN_UTC,
    description="Mondays 03:00 UTC: the last 30 days again, for late revisions.",
)
def ga4_weekly_repull(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    return not_configured(GA4Resource.required_env) or range_request(
        29, context.scheduled_execution_time or datetime.now(UTC), "weekly"
    )
