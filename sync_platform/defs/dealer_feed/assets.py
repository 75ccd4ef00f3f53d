"""One asset per dealer entity, built from config/sources/dealer_feed.yaml."""

from contextlib import AbstractContextManager

from sync_platform.config import EntityConfig, cached_source_config
from sync_platform.engine.ports import EntitySource
from sync_platform.orchestration.sync_asset import build_sync_asset
from sync_platform.resources.dealer_feed import DealerFeedResource
from sync_platform.sources.dealer.client import dealer_entity_source

DEALER_FEED = cached_source_config("dealer_feed")


def _entity_source(
    resource: DealerFeedResource, entity: EntityConfig, _scope: dict | None
) -> AbstractContextManager[EntitySource]:
    return dealer_entity_source(resource.client(), entity)


dealer_stock, dealer_leads = (
    build_sync_asset(
        DEALER_FEED,
        DEALER_FEED.entities[name],
        resource_key="dealer_feed",
        entity_source=_entity_source,
    )
    for name in ("dealer_stock", "dealer_leads")
)
