import dagster as dg

from sync_platform.defs.dealer_feed.jobs import dealer_sync

dealer_sync_schedule = dg.ScheduleDefinition(
    name="dealer_sync_every_15_minutes",
    job=dealer_sync,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
