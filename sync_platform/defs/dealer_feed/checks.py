"""Schema, quarantine and freshness checks for the dealer entities, plus the sensor that
evaluates the freshness checks between runs."""

from sync_platform.defs.dealer_feed.assets import DEALER_FEED
from sync_platform.orchestration.checks import entity_checks, freshness_checks, freshness_sensor

dealer_checks = entity_checks(DEALER_FEED)
dealer_freshness_checks = freshness_checks(list(DEALER_FEED.entities.values()))
dealer_freshness_sensor = freshness_sensor("dealer_feed", dealer_freshness_checks)
