"""`ga4_daily`: GA4 reports for a day or a range of days, then the marts built on them."""

import dagster as dg

from sync_platform.orchestration.automation import source_job

GA4_AND_MARTS = dg.AssetSelection.groups("ga4") | dg.AssetSelection.groups("ga4").downstream()

ga4_daily = source_job(
    "ga4_daily",
    GA4_AND_MARTS,
    source="ga4",
    description="GA4 reports for a day or a range of days, then the marts built on them.",
)
