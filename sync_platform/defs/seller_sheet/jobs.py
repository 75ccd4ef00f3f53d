import dagster as dg

from sync_platform.orchestration.sync_asset import SOURCE_TAG

seller_sheet_sync = dg.define_asset_job(
    "seller_sheet_sync",
    selection=dg.AssetSelection.groups("seller_sheet"),
    description="Read the seller list; verify every seller reached the warehouse.",
    tags={SOURCE_TAG: "seller_sheet"},
)

seller_sheet_schedule = dg.ScheduleDefinition(
    name="seller_sheet_every_10_minutes",
    job=seller_sheet_sync,
    cron_schedule="*/10 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
