"""Hourly deltas, a weekly full sync that also soft-deletes what the ERP removed, and the
same full sync as the manual fallback (`dagster job execute -j legacy_erp_full_sync`)."""

import dagster as dg

from sync_platform.defs.legacy_erp.assets import LEGACY_ERP
from sync_platform.orchestration.sync_asset import SOURCE_TAG

ERP_ASSETS = dg.AssetSelection.groups("legacy_erp")

legacy_erp_sync = dg.define_asset_job(
    "legacy_erp_sync",
    selection=ERP_ASSETS,
    description="Delta sync of every ERP entity by ModifiedDate (with an overlap margin).",
    tags={SOURCE_TAG: "legacy_erp"},
)

legacy_erp_full_sync = dg.define_asset_job(
    "legacy_erp_full_sync",
    selection=ERP_ASSETS,
    description="Full read of every ERP entity; rows gone from the ERP are soft-deleted.",
    tags={SOURCE_TAG: "legacy_erp"},
    config={"ops": {name: {"config": {"full_refresh": True}} for name in LEGACY_ERP.entities}},
)

legacy_erp_hourly = dg.ScheduleDefinition(
    name="legacy_erp_delta_hourly",
    job=legacy_erp_sync,
    cron_schedule="10 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

legacy_erp_weekly_full = dg.ScheduleDefinition(
    name="legacy_erp_full_weekly",
    job=legacy_erp_full_sync,
    cron_schedule="30 3 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
