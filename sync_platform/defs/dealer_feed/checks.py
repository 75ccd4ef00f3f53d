"""Schema and quarantine checks of the dealer entities (one op for the source)."""

from sync_platform.defs.dealer_feed.assets import DEALER_FEED
from sync_platform.orchestration.checks import entity_checks

dealer_checks = entity_checks(DEALER_FEED)
