"""Dagster resources, each configured from the environment (EnvVar), secrets never logged."""

from sync_platform.resources.backups import BackupResource, backup_resource
from sync_platform.resources.dealer_feed import DealerFeedResource, dealer_feed_resource
from sync_platform.resources.ga4 import GA4Resource, ga4_resource
from sync_platform.resources.legacy_erp import LegacyErpResource, legacy_erp_resource
from sync_platform.resources.n8n import (
    N8nApiResource,
    WebhookInboxResource,
    n8n_api_resource,
    webhook_inbox_resource,
)
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
        "backups": backup_resource(),
        "webhook_inbox": webhook_inbox_resource(),
        "n8n_api": n8n_api_resource(),
    }


__all__ = [
    "BackupResource",
    "DealerFeedResource",
    "GA4Resource",
    "LegacyErpResource",
    "N8nApiResource",
    "SellerSheetResource",
    "WarehouseResource",
    "WebhookInboxResource",
    "all_resources",
]
