"""One daily-partitioned asset per GA4 report in config/sources/ga4.yaml."""

from sync_platform.config import cached_source_config
from sync_platform.defs.ga4.resources import GA4Resource
from sync_platform.orchestration.sync_asset import build_sync_asset, daily_partitions

GA4 = cached_source_config("ga4")
GA4_REPORTS = list(GA4.entities.values())
GA4_PARTITIONS = daily_partitions(GA4_REPORTS[0])

ga4_assets = [
    build_sync_asset(GA4, report, GA4Resource, kinds={"python", "polars", "googleanalytics"})
    for report in GA4_REPORTS
]
