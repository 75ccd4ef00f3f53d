"""What a GA4 `runReport` response means, checked before anyone trusts it.

Google serialises its protobufs as proto3 JSON: a field at its default (0, false, "") is
left out, so a missing `consumed`, `remaining` or `dataLossFromOtherRow` means 0 or false,
and a report with no rows has neither `rows` nor `rowCount`. Metric values are strings
typed by their header; integers must parse as integers, every other type as a finite float.
Anything else is a `GA4ResponseError` naming the property, the date range and the problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sync_platform.errors import ValidationError

Value = str | int | float
Row = dict[str, Value]

INTEGER_METRIC_TYPE = "TYPE_INTEGER"
# Every other documented MetricType is "a special floating point type"; an unknown future type
# is read as a float too rather than failing a sync that does not even use it.
FLOAT_METRIC_TYPES = frozenset(
    {
        "TYPE_FLOAT",
        "TYPE_SECONDS",
        "TYPE_MILLISECONDS",
        "TYPE_MINUTES",
        "TYPE_HOURS",
        "TYPE_STANDARD",
        "TYPE_CURRENCY",
        "TYPE_FEET",
        "TYPE_MILES",
        "TYPE_METERS",
        "TYPE_KILOMETERS",
    }
)
QUOTA_NAMES = (
    "tokensPerDay",
    "tokensPerHour",
    "concurrentRequests",
    "serverErrorsPerProjectPerHour",
    "potentiallyThresholdedRequestsPerHour",
    "tokensPerProjectPerHour",
)


class GA4ResponseError(ValidationError):
    """GA4 answered 200 with a report that cannot be right; nothing of it may be stored."""


@dataclass(frozen=True)
class QuotaStatus:
    consumed: int
    remaining: int


@dataclass(frozen=True)
class PropertyQuota:
    """The property's quota after the request that reported it (`propertyQuota`)."""

    tokens_per_day: QuotaStatus | None = None
    tokens_per_hour: QuotaStatus | None = None
    concurrent_requests: QuotaStatus | None = None
    server_errors_per_project_per_hour: QuotaStatus | None = None
    potentially_thresholded_requests_per_hour: QuotaStatus | None = None
    tokens_per_project_per_hour: QuotaStatus | None = None


@dataclass(frozen=True)
class SamplingMetadata:
    samples_read_count: int
    sampling_space_size: int


@dataclass(frozen=True)
class ReportMetadata:
    """`metadata`: flags that say how far the figures can be trusted."""

    data_loss_from_other_row: bool = False
    subject_to_thresholding: bool = False
    sampling: tuple[SamplingMetadata, ...] = ()
    currency_code: str | None = None
    time_zone: str | None = None
    empty_reason: str | None = None


@dataclass(frozen=True)
class ReportPage:
    """One response, parsed and checked on its own."""

    dimension_names: list[str]
    metric_types: dict[str, str]
    rows: list[Row]
    row_count: int
    metadata: ReportMetadata
    quota: PropertyQuota | None


@dataclass(frozen=True)
class ReportResult:
    """A whole report: every page was fetched and checked before this exists."""

    rows: list[Row]
    row_count: int
    metadata: ReportMetadata
    quota: PropertyQuota | None
    pages: int
    dimension_names: list[str] = field(default_factory=list)
    metric_types: dict[str, str] = field(default_factory=dict)


def _names(headers: Any, key: str, fail) -> list[str]:
    if headers is None:
        return []
    if not isinstance(headers, list) or not all(
        isinstance(h, dict) and isinstance(h.get("name"), str) for h in headers
    ):
        raise fail(f"{key} is not a list of named headers")
    return [h["name"] for h in headers]


def _metric_value(raw: Any, metric: str, metric_type: str, row_number: int, fail) -> int | float:
    where = f"row {row_number} metric {metric} ({metric_type})"
    if not isinstance(raw, str):
        raise fail(f"{where} has no value")
    try:
        if metric_type == INTEGER_METRIC_TYPE:
            return int(raw)
        number = float(raw)
    except ValueError:
        raise fail(f"{where} is not numeric: {raw[:40]!r}") from None
    if not math.isfinite(number):
        raise fail(f"{where} is not a finite number: {raw[:40]!r}")
    return number


def _row(raw: Any, number: int, dimensions: list[str], metric_types: dict[str, str], fail) -> Row:
    if not isinstance(raw, dict):
        raise fail(f"row {number} is not an object")
    dimension_values = raw.get("dimensionValues") or []
    metric_values = raw.get("metricValues") or []
    if len(dimension_values) != len(dimensions) or len(metric_values) != len(metric_types):
        raise fail(
            f"row {number} has {len(dimension_values)} dimension and {len(metric_values)} "
            f"metric values for {len(dimensions)} dimension and {len(metric_types)} metric "
            "headers"
        )
    row: Row = {}
    for name, value in zip(dimensions, dimension_values, strict=True):
        # proto3 JSON leaves out an empty string: `{}` is the value "".
        text = value.get("value", "") if isinstance(value, dict) else None
        if not isinstance(text, str):
            raise fail(f"row {number} dimension {name} is not a text value")
        row[name] = text
    for (name, metric_type), value in zip(metric_types.items(), metric_values, strict=True):
        raw_value = value.get("value") if isinstance(value, dict) else None
        row[name] = _metric_value(raw_value, name, metric_type, number, fail)
    return row


def _count(raw: Any, what: str, fail) -> int:
    """An integer field; proto3 JSON writes int64 as a string, int32 as a number."""
    if raw is None:
        return 0
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise fail(f"{what} is not an integer: {raw!r}") from None


def parse_metadata(raw: Any, fail) -> ReportMetadata:
    if raw is None:
        return ReportMetadata()
    if not isinstance(raw, dict):
        raise fail("metadata is not an object")
    sampling = tuple(
        SamplingMetadata(
            _count(item.get("samplesReadCount"), "samplesReadCount", fail),
            _count(item.get("samplingSpaceSize"), "samplingSpaceSize", fail),
        )
        for item in raw.get("samplingMetadatas") or []
    )
    return ReportMetadata(
        data_loss_from_other_row=bool(raw.get("dataLossFromOtherRow", False)),
        subject_to_thresholding=bool(raw.get("subjectToThresholding", False)),
        sampling=sampling,
        currency_code=raw.get("currencyCode"),
        time_zone=raw.get("timeZone"),
        empty_reason=raw.get("emptyReason"),
    )


def parse_quota(raw: Any, fail) -> PropertyQuota | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise fail("propertyQuota is not an object")
    statuses = {}
    for name in QUOTA_NAMES:
        status = raw.get(name)
        if status is None:
            continue
        if not isinstance(status, dict):
            raise fail(f"propertyQuota.{name} is not an object")
        statuses[name] = QuotaStatus(
            consumed=_count(status.get("consumed"), f"{name}.consumed", fail),
            remaining=_count(status.get("remaining"), f"{name}.remaining", fail),
        )
    return PropertyQuota(
        tokens_per_day=statuses.get("tokensPerDay"),
        tokens_per_hour=statuses.get("tokensPerHour"),
        concurrent_requests=statuses.get("concurrentRequests"),
        server_errors_per_project_per_hour=statuses.get("serverErrorsPerProjectPerHour"),
        potentially_thresholded_requests_per_hour=statuses.get(
            "potentiallyThresholdedRequestsPerHour"
        ),
        tokens_per_project_per_hour=statuses.get("tokensPerProjectPerHour"),
    )


def parse_page(body: Any, fail) -> ReportPage:
    """One `runReport` response as typed rows; `fail(message)` builds the error to raise."""
    if not isinstance(body, dict):
        raise fail("the response is not a JSON object")
    dimensions = _names(body.get("dimensionHeaders"), "dimensionHeaders", fail)
    metric_headers = body.get("metricHeaders") or []
    metric_names = _names(metric_headers, "metricHeaders", fail)
    metric_types = {
        name: str(header.get("type", "METRIC_TYPE_UNSPECIFIED"))
        for name, header in zip(metric_names, metric_headers, strict=True)
    }
    if len(metric_types) != len(metric_names):
        raise fail("metricHeaders name a metric twice")
    raw_rows = body.get("rows") or []
    if not isinstance(raw_rows, list):
        raise fail("rows is not a list")
    if raw_rows and "rowCount" not in body:
        raise fail(f"{len(raw_rows)} rows came without a rowCount, so completeness is unknown")
    rows = [
        _row(raw, number, dimensions, metric_types, fail)
        for number, raw in enumerate(raw_rows, start=1)
    ]
    return ReportPage(
        dimension_names=dimensions,
        metric_types=metric_types,
        rows=rows,
        row_count=_count(body.get("rowCount"), "rowCount", fail),
        metadata=parse_metadata(body.get("metadata"), fail),
        quota=parse_quota(body.get("propertyQuota"), fail),
    )
