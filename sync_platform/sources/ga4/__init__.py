"""Google Analytics 4 Data API client (plain Python, no Dagster)."""

from sync_platform.sources.ga4.client import (
    DEFAULT_BASE_URL,
    GA4_RETRY,
    MAX_PAGE_SIZE,
    GA4Client,
    GA4QuotaExhaustedError,
    QuotaFloor,
)
from sync_platform.sources.ga4.report import (
    GA4ResponseError,
    PropertyQuota,
    QuotaStatus,
    ReportMetadata,
    ReportResult,
    SamplingMetadata,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "GA4_RETRY",
    "MAX_PAGE_SIZE",
    "GA4Client",
    "GA4QuotaExhaustedError",
    "GA4ResponseError",
    "PropertyQuota",
    "QuotaFloor",
    "QuotaStatus",
    "ReportMetadata",
    "ReportResult",
    "SamplingMetadata",
]
