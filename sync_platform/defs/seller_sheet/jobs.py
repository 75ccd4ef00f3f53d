"""`seller_sheet_sync`: the seller list, verified seller by seller."""

import dagster as dg

from sync_platform.orchestration.automation import source_job

seller_sheet_sync = source_job(
    "seller_sheet_sync",
    dg.AssetSelection.groups("seller_sheet"),
    source="seller_sheet",
    description="Read the seller list; verify every seller reached the warehouse.",
)
