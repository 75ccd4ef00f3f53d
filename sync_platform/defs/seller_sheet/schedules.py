"""The seller sheet every 10 minutes."""

from sync_platform.defs.seller_sheet.jobs import seller_sheet_sync
from sync_platform.defs.seller_sheet.resources import SellerSheetResource
from sync_platform.orchestration.automation import utc_schedule

seller_sheet_schedule = utc_schedule(
    "seller_sheet_every_10_minutes",
    seller_sheet_sync,
    "*/10 * * * *",
    requires=SellerSheetResource.required_env,
    description="Every 10 minutes: the whole seller sheet, every row to the warehouse.",
)
