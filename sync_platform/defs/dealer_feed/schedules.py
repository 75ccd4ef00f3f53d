"""The dealer feed every 15 minutes."""

from sync_platform.defs.dealer_feed.jobs import dealer_sync
from sync_platform.defs.dealer_feed.resources import DealerFeedResource
from sync_platform.orchestration.automation import utc_schedule

dealer_sync_schedule = utc_schedule(
    "dealer_sync_every_15_minutes",
    dealer_sync,
    "*/15 * * * *",
    requires=DealerFeedResource.required_env,
    description="Every 15 minutes: stock as a snapshot, leads since the cursor.",
)
