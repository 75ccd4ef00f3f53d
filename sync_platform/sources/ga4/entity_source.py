"""The engine's view of a GA4 report: one runReport over the run's date range.

A report is an entity in config/sources/ga4.yaml: `options.dimensions` and
`options.metrics` are what is requested, `partition_column` (date) what the range slices.
The whole range is fetched before the engine sees a row (the client pages to `rowCount`
first), so a failure mid-pagination writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from sync_platform.config.models import EntityConfig
from sync_platform.engine.ports import EntitySource
from sync_platform.errors import ConfigurationError
from sync_platform.sources.ga4.client import GA4Client
from sync_platform.sources.ga4.report import ReportResult

ROWS_PER_PAGE = 10_000


def date_range(entity: EntityConfig, scope: dict[str, Any] | None) -> tuple[date, date]:
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
    }
    quota = report.quota
    if quota and quota.tokens_per_hour:
        metadata["ga4_tokens_per_hour_remaining"] = quota.tokens_per_hour.remaining
    if quota and quota.tokens_per_day:
        metadata["ga4_tokens_per_day_remaining"] = quota.tokens_per_day.remaining
    return metadata


@contextmanager
def ga4_entity_source(
    client: GA4Client, entity: EntityConfig, scope: dict[str, Any] | None
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
            pages=pages, extra_metadata=lambda: report_metadata(fetched[-1]) if fetched else {}
        )
    finally:
        client.close()
