"""The seller list: `sheet_sellers` (every row, verified against the sheet's seller-number
column) and `sheet_seller_properties` (rows with property data; each waits for its seller)."""

from sync_platform.config import cached_source_config
from sync_platform.defs.seller_sheet.resources import SellerSheetResource
from sync_platform.orchestration.source_systems import source_system_specs
from sync_platform.orchestration.sync_asset import build_sync_asset

SELLER_SHEET = cached_source_config("seller_sheet")
seller_sheet_system = source_system_specs(SELLER_SHEET)

seller_sheet_assets = [
    build_sync_asset(SELLER_SHEET, entity, SellerSheetResource)
    for entity in SELLER_SHEET.entities.values()
]
