"""Schema, quarantine and freshness checks for the dealer entities, plus the sensor that
evaluates the freshness checks between runs."""

import dagster as dg

from sync_platform.defs.dealer_feed.assets import DEALER_FEED
from sync_platform.orchestration.checks import entity_checks, freshness_checks

dealer_checks = entity_checks(DEALER_FEED)
dealer_freshness_checks = freshness_checks(list(DEALER_FEED.entities.values()))
dealer_freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=dealer_freshness_checks,
    name="dealer_feed_freshness_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
