"""Hourly deltas, and a full sync that also soft-deletes what the ERP removed (weekly, and the
manual fallback: `dagster job execute -j legacy_erp_full_sync`)."""

import dagster as dg

from sync_platform.orchestration.automation import source_job

ERP_ASSETS = dg.AssetSelection.groups("legacy_erp")

legacy_erp_sync = source_job(
    "legacy_erp_sync",
    ERP_ASSETS,
    source="legacy_erp",
    description="Delta sync of every ERP entity by ModifiedDate (with an overlap margin).",
)

legacy_erp_full_sync = source_job(
    "legacy_erp_full_sync",
    ERP_ASSETS,
    source="legacy_erp",
    description="Full read of every ERP entity; rows gone from the ERP are soft-deleted.",
    full_refresh=True,
)
