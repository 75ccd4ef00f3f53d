"""GA4 as a Dagster resource, configured from the environment and registered under `ga4`.

The engine's view of a GA4 report is one runReport over the run's date range. A report is
an entity in config/sources/ga4.yaml: `options.dimensions` and
`options.metrics` are what is requested, `partition_column` (date) what the range slices.
The whole range is fetched before the engine sees a row (the client pages to `rowCount`
first), so a failure mid-pagination writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import date
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field

from sync_platform.config.models import EntityConfig
from sync_platform.engine.ports import EntitySource
from sync_platform.engine.scope import Scope
from sync_platform.errors import ConfigurationError
from sync_platform.orchestration.resources import GoogleSourceResource, optional_env
from sync_platform.sources.ga4.client import (
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_PAGE_SIZE,
    GA4_RETRY,
    MAX_PAGE_SIZE,
    PROPERTY_ID_ENV,
    GA4Client,
    QuotaFloor,
)
from sync_platform.sources.ga4.report import ReportResult
from sync_platform.sources.google_auth import ANALYTICS_READONLY

ROWS_PER_PAGE = 10_000


def date_range(entity: EntityConfig, scope: Scope | None) -> tuple[date, date]:
    value = (scope or {}).get(entity.partition_column) if entity.partition_column else None
    if value is None:
        raise ConfigurationError(
            f"{entity.name} is a daily report: it runs for a partition (a day or a range)",
            hint="materialize it for a partition or a partition range",
        )
    return value if isinstance(value, tuple) else (value, value)


def report_metadata(report: ReportResult) -> dict[str, Any]:
    """What GA4 said about the figures, next to the sync's own metadata."""
    metadata: dict[str, Any] = {
        "ga4_row_count": report.row_count,
        "ga4_pages": report.pages,
        "ga4_data_loss_from_other_row": report.metadata.data_loss_from_other_row,
        "ga4_subject_to_thresholding": report.metadata.subject_to_thresholding,
        "ga4_sampled": bool(report.metadata.sampling),
        # the share of events the figures were computed from (1.0: unsampled); the least
        # of the date ranges' when GA4 sampled more than one
        "ga4_sampling_ratio": min(
            (
                s.samples_read_count / s.sampling_space_size
                for s in report.metadata.sampling
                if s.sampling_space_size
            ),
            default=1.0,
        ),
    }
    if report.metadata.currency_code:  # what TYPE_CURRENCY metrics are in
        metadata["ga4_currency_code"] = report.metadata.currency_code
    if report.metadata.time_zone:  # the property's day, which `date` is in
        metadata["ga4_time_zone"] = report.metadata.time_zone
    quota = report.quota
    if quota and quota.tokens_per_hour:
        metadata["ga4_tokens_per_hour_remaining"] = quota.tokens_per_hour.remaining
    if quota and quota.tokens_per_day:
        metadata["ga4_tokens_per_day_remaining"] = quota.tokens_per_day.remaining
    return metadata


@contextmanager
def ga4_entity_source(
    client: GA4Client, entity: EntityConfig, scope: Scope | None
) -> Iterator[EntitySource]:
    first, last = date_range(entity, scope)
    fetched: list[ReportResult] = []

    def pages(_since) -> Iterator[list[dict[str, Any]]]:
        report = client.run_report(
            start=first,
            end=last,
            dimensions=entity.options["dimensions"],
            metrics=entity.options["metrics"],
        )
        fetched.append(report)
        for start in range(0, len(report.rows), ROWS_PER_PAGE):
            yield report.rows[start : start + ROWS_PER_PAGE]

    try:
        yield EntitySource(
            pages=pages,
            extra_metadata=lambda: report_metadata(fetched[-1]) if fetched else {},
            subject=f"GA4 property {client.property_id}",
        )
    finally:
        client.close()


class GA4Resource(GoogleSourceResource):
    key: ClassVar[str] = "ga4"
    required_env: ClassVar[tuple[str, ...]] = (PROPERTY_ID_ENV, *GoogleSourceResource.required_env)

    env_prefix: ClassVar[str] = "GA4_"
    tunable: ClassVar[tuple[str, ...]] = (
        "page_size",
        "timeout_seconds",
        "retry_attempts",
        "retry_seconds",
        "min_tokens_per_hour",
        "min_tokens_per_day",
    )

    property_id: str = Field(description=f"the GA4 property id ({PROPERTY_ID_ENV})")
    base_url: str = DEFAULT_BASE_URL
    page_size: int = Field(
        default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="rows asked for per request"
    )
    retry_attempts: int = Field(
        default=GA4_RETRY.attempts, ge=1, description="attempts per request (5xx, 429, stalls)"
    )
    retry_seconds: float = Field(
        default=GA4_RETRY.total_seconds, gt=0, description="time budget of one request's attempts"
    )
    min_tokens_per_hour: int = Field(
        default=50, ge=0, description="stop before the hourly token quota falls below this"
    )
    min_tokens_per_day: int = Field(
        default=500, ge=0, description="stop before the daily token quota falls below this"
    )

    def client(self) -> GA4Client:
        return GA4Client(
            self.token_provider(scope=ANALYTICS_READONLY, what=f"GA4 property {self.property_id}"),
            property_id=self.property_id,
            base_url=self.base_url,
            page_size=self.page_size,
            min_remaining_tokens=QuotaFloor(self.min_tokens_per_hour, self.min_tokens_per_day),
            timeout_seconds=self.timeout_seconds,
            retry=replace(
                GA4_RETRY, attempts=self.retry_attempts, total_seconds=self.retry_seconds
            ),
        )

    def entity_source(
        self, entity: EntityConfig, scope: Scope | None
    ) -> AbstractContextManager[EntitySource]:
        return ga4_entity_source(self.client(), entity, scope)

    @classmethod
    def from_env(cls) -> GA4Resource:
        return cls(
            property_id=dg.EnvVar(PROPERTY_ID_ENV),
            base_url=optional_env(BASE_URL_ENV, DEFAULT_BASE_URL),
            **cls.credentials_from_env(),
            **cls.tuning_from_env(),
        )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={GA4Resource.key: GA4Resource.from_env()})
