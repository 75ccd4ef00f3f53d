"""Dagster resources, each configured from the environment (EnvVar), secrets never logged."""

from sync_platform.resources.dealer_feed import DealerFeedResource, dealer_feed_resource
from sync_platform.resources.ga4 import GA4Resource, ga4_resource
from sync_platform.resources.legacy_erp import LegacyErpResource, legacy_erp_resource
from sync_platform.resources.seller_sheet import SellerSheetResource, seller_sheet_resource
from sync_platform.resources.warehouse import WarehouseResource, warehouse_resource


def all_resources() -> dict[str, object]:
    """The resources every job of the code location can use, by key."""
    return {
        "warehouse": warehouse_resource(),
        "dealer_feed": dealer_feed_resource(),
        "legacy_erp": legacy_erp_resource(),
        "seller_sheet": seller_sheet_resource(),
        "ga4": ga4_resource(),
    }


__all__ = [
    "DealerFeedResource",
    "GA4Resource",
    "LegacyErpResource",
    "SellerSheetResource",
    "WarehouseResource",
    "all_resources",
]
