"""The seller list: `sheet_sellers` (every row, verified against the sheet's seller-number
column) and `sheet_seller_properties` (rows with property data; each waits for its seller)."""

from sync_platform.config import cached_source_config
from sync_platform.orchestration.sync_asset import build_sync_asset

SELLER_SHEET = cached_source_config("seller_sheet")


def _entity_source(resource, entity, _scope):
    # The seller-number column lists every seller, not only those with a property.
    return resource.client().entity_source(entity, list_keys=not entity.skip_when_empty)


seller_sheet_assets = [
    build_sync_asset(
        SELLER_SHEET, entity, resource_key="seller_sheet", entity_source=_entity_source
    )
    for entity in SELLER_SHEET.entities.values()
]
