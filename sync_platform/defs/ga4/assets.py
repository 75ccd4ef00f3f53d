"""One daily-partitioned asset per GA4 report in config/sources/ga4.yaml.

The partitions start on the reports' `partition_start`, or on GA4_PARTITION_START when set:
the day this property's history begins for the business, so the UI does not count months
before it as missing.
"""

import os
from datetime import date

from sync_platform.config import cached_source_config
from sync_platform.config.models import SourceConfig
from sync_platform.defs.ga4.resources import GA4Resource
from sync_platform.errors import ConfigurationError
from sync_platform.orchestration.source_systems import source_system_specs
from sync_platform.orchestration.sync_asset import build_sync_asset, daily_partitions

PARTITION_START_ENV = "GA4_PARTITION_START"


def with_history_start(source: SourceConfig, value: str | None) -> SourceConfig:
    if not value:
        return source
    try:
        start = date.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(
            f"{PARTITION_START_ENV}={value[:40]!r} is not a date",
            hint="give the first day of history as YYYY-MM-DD, or unset it",
        ) from None
    entities = {
        name: entity.model_copy(update={"partition_start": start})
        for name, entity in source.entities.items()
    }
    return source.model_copy(update={"entities": entities})


GA4 = with_history_start(cached_source_config("ga4"), os.environ.get(PARTITION_START_ENV))
GA4_REPORTS = list(GA4.entities.values())
GA4_PARTITIONS = daily_partitions(GA4_REPORTS[0])
ga4_system = source_system_specs(GA4)

ga4_assets = [
    build_sync_asset(GA4, report, GA4Resource, kinds={"python", "polars", "googleanalytics"})
    for report in GA4_REPORTS
]
