"""`dealer_sync`: stock (full snapshot) and leads (incremental)."""

import dagster as dg

from sync_platform.orchestration.automation import source_job

dealer_sync = source_job(
    "dealer_sync",
    dg.AssetSelection.groups("dealer_feed"),
    source="dealer_feed",
    description="Sync dealer stock (full snapshot) and leads (incremental) into the warehouse.",
)
