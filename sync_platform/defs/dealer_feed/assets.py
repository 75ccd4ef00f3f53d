"""One asset per dealer entity, built from config/sources/dealer_feed.yaml."""

from sync_platform.config import cached_source_config
from sync_platform.defs.dealer_feed.resources import DealerFeedResource
from sync_platform.orchestration.source_systems import source_system_specs
from sync_platform.orchestration.sync_asset import build_sync_asset

DEALER_FEED = cached_source_config("dealer_feed")
dealer_feed_system = source_system_specs(DEALER_FEED)

dealer_stock, dealer_leads = (
    build_sync_asset(DEALER_FEED, DEALER_FEED.entities[name], DealerFeedResource)
    for name in ("dealer_stock", "dealer_leads")
)
