"""Client for the Google Analytics 4 Data API v1beta: `properties/{id}:runReport`.

A report is read page by page (limit/offset) until `rowCount` rows are in hand (a page may
hold fewer rows than asked: GA4 serves at most 250,000 a response), and handed
back only whole: a failure on any page raises and returns nothing, so a partition is never
written from half a report. Each request asks for `propertyQuota`; when the hourly or daily
token budget falls below a floor the client stops before its next request instead of
spending the rest (GA4 then refuses the whole property until the quota refills).

GA4 counts server errors against the property (about 10 an hour on a standard property),
so retries are few and the circuit breaker opens after 5 failures, not the HTTP layer's
defaults. The bearer token is asked for on every request, so a refreshed token applies, and
a 401 on a token revoked before it expired is answered once with a new token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sync_platform.errors import ConfigurationError, NetworkError
from sync_platform.sources import shared_state
from sync_platform.sources.ga4.report import (
    GA4ResponseError,
    PropertyQuota,
    QuotaStatus,
    ReportMetadata,
    ReportPage,
    ReportResult,
    SamplingMetadata,
    parse_page,
)
from sync_platform.sources.google_auth import ANALYTICS_READONLY, AccessTokenProvider, with_token
from sync_platform.sources.http_session import HttpStatusError, RetrySettings, SourceHttpClient

SOURCE = "ga4"
# The environment variables GA4 is configured from (defs/ga4/resources.py); the Google
# credentials come from sources/google_auth.py's variables.
PROPERTY_ID_ENV = "GA4_PROPERTY_ID"
BASE_URL_ENV = "GA4_BASE_URL"
DEFAULT_BASE_URL = "https://analyticsdata.googleapis.com"
DEFAULT_PAGE_SIZE = 100_000
MAX_PAGE_SIZE = 250_000  # GA4 returns at most this many rows per request
PACIFIC = ZoneInfo("America/Los_Angeles")  # GA4's daily quotas reset at midnight Pacific
API_SCHEMA_URL = "https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema"

# Few attempts and an early breaker: GA4 allows ~10 server errors per property per hour.
GA4_RETRY = RetrySettings(
    attempts=3,
    total_seconds=90.0,
    wait_initial=1.0,
    wait_max=20.0,
    breaker_fail_max=5,
    breaker_reset_seconds=300.0,
)


@dataclass(frozen=True)
class QuotaFloor:
    """Tokens to leave untouched: below these the client stops before the next request."""

    tokens_per_hour: int = 50
    tokens_per_day: int = 500


class GA4QuotaExhaustedError(NetworkError):
    """The property's token budget is below the floor; retry after `refills_at`."""

    def __init__(
        self, message: str, *, quota: str, remaining: int, refills_at: datetime, hint: str
    ):
        self.quota = quota
        self.remaining = remaining
        self.refills_at = refills_at
        super().__init__(message, hint=hint)


def next_hourly_refill(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def next_daily_refill(now: datetime) -> datetime:
    """Midnight Pacific time after `now`, in UTC."""
    pacific_day = now.astimezone(PACIFIC).date() + timedelta(days=1)
    return datetime.combine(pacific_day, time(0), tzinfo=PACIFIC).astimezone(UTC)


# (PropertyQuota/QuotaFloor field, period, when the last reading stops applying, wording)
_BUDGETS = (
    ("tokens_per_hour", "hourly", next_hourly_refill, "within the hour"),
    ("tokens_per_day", "daily", next_daily_refill, "at midnight Pacific time"),
)


# What GA4's 429 says when a token budget is spent (the Data API quota page), by the
# QuotaFloor field it exhausts.
_EXHAUSTED = (
    ("tokens_per_day", "Exhausted property tokens per day"),
    ("tokens_per_hour", "Exhausted property tokens per hour"),
    ("tokens_per_hour", "Exhausted property tokens per project per hour"),
    ("tokens_per_hour", "Exhausted tokens per project per hour"),
)


def _exhausted_quota(message: str) -> str | None:
    return next((quota for quota, said in _EXHAUSTED if said.lower() in message.lower()), None)


def _quota_subject(prop: str) -> str:
    return f"property {prop}"


def _stored(quota: PropertyQuota) -> dict[str, Any]:
    return asdict(quota)


def _loaded(reading: dict[str, Any]) -> PropertyQuota:
    return PropertyQuota(
        **{name: QuotaStatus(**value) if value else None for name, value in reading.items()}
    )


def _google_error(body: str) -> tuple[str, str]:
    """(status, message) from Google's `{"error": {"code", "message", "status"}}`."""
    try:
        error = json.loads(body).get("error", {})
    except (json.JSONDecodeError, AttributeError):
        return "", body[:300]
    if not isinstance(error, dict):
        return "", str(error)[:300]
    return str(error.get("status", "")), str(error.get("message", ""))


def property_number(property_id: str | int) -> str:
    """The bare number of a property given as 123, "123" or "properties/123"."""
    text = str(property_id).strip().removeprefix("properties/")
    if not text.isdigit():
        raise ConfigurationError(
            f"GA4 property id {property_id!r} is not a number",
            hint="use the numeric Property ID from GA4 Admin → Property details",
        )
    return text


class GA4Client:
    def __init__(
        self,
        token_provider: AccessTokenProvider,
        *,
        property_id: str | int | None = None,
        base_url: str = DEFAULT_BASE_URL,
        page_size: int = DEFAULT_PAGE_SIZE,
        min_remaining_tokens: QuotaFloor | None = None,
        timeout_seconds: float = 20.0,
        retry: RetrySettings | None = None,
    ):
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ConfigurationError(
                f"GA4 page size {page_size} is out of range",
                hint=f"use 1 to {MAX_PAGE_SIZE} rows per request",
            )
        self.tokens = token_provider
        self.property_id = property_number(property_id) if property_id is not None else None
        self.page_size = page_size
        self.floor = min_remaining_tokens or QuotaFloor()
        self.http = SourceHttpClient(
            SOURCE,
            base_url,
            headers={"Accept": "application/json"},
            timeout_seconds=timeout_seconds,
            retry=retry or GA4_RETRY,
            # a spent token budget is not a pace to slow down to: no retry can succeed
            final_429=lambda body: _exhausted_quota(_google_error(body)[1]) is not None,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GA4Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reports ---------------------------------------------------------------------------

    def run_report(
        self,
        property_id: str | int | None = None,
        *,
        start: date,
        end: date,
        dimensions: Sequence[str],
        metrics: Sequence[str],
        keep_empty_rows: bool = False,
    ) -> ReportResult:
        """Every row of one report, or an exception: never part of it."""
        prop = self._property(property_id)
        where = f"GA4 property {prop} ({start.isoformat()} to {end.isoformat()})"
        rows: list[dict[str, Any]] = []
        pages: list[ReportPage] = []
        while True:
            self._check_quota(prop, where)
            offset = len(rows)
            body = self._request(
                prop,
                where,
                {
                    "dateRanges": [{"startDate": start.isoformat(), "endDate": end.isoformat()}],
                    "dimensions": [{"name": name} for name in dimensions],
                    "metrics": [{"name": name} for name in metrics],
                    "limit": self.page_size,
                    "offset": offset,
                    "keepEmptyRows": keep_empty_rows,
                    "returnPropertyQuota": True,
                },
            )
            fail = partial(_bad_response, f"{where}, page {len(pages) + 1} (offset {offset})")
            page = parse_page(body, fail)
            self._check_page(page, pages[0] if pages else None, dimensions, metrics, offset, fail)
            if page.quota is not None:
                shared_state.remember_reading(
                    SOURCE, _quota_subject(prop), _stored(page.quota), datetime.now(UTC)
                )
            pages.append(page)
            rows.extend(page.rows)
            if len(rows) >= page.row_count:
                break
        last = pages[-1]
        return ReportResult(
            rows=rows,
            row_count=last.row_count,
            metadata=_merged_metadata(pages),
            quota=last.quota,
            pages=len(pages),
            dimension_names=last.dimension_names,
            metric_types=last.metric_types,
        )

    def _property(self, property_id: str | int | None) -> str:
        if property_id is not None:
            return property_number(property_id)
        if self.property_id is None:
            raise ConfigurationError(
                "no GA4 property id given", hint="pass property_id to GA4Client or run_report"
            )
        return self.property_id

    def _check_page(
        self,
        page: ReportPage,
        first: ReportPage | None,
        dimensions: Sequence[str],
        metrics: Sequence[str],
        offset: int,
        fail: Callable[[str], GA4ResponseError],
    ) -> None:
        """A well-formed page must still be the page that was asked for."""
        if page.dimension_names != list(dimensions) or list(page.metric_types) != list(metrics):
            raise fail(
                f"headers {page.dimension_names + list(page.metric_types)} do not match the "
                f"request {list(dimensions) + list(metrics)}"
            )
        if first is not None and page.row_count != first.row_count:
            raise fail(
                f"rowCount changed from {first.row_count} to {page.row_count} between pages "
                "(GA4 revised the data mid-read)"
            )
        # GA4 may serve fewer rows than `limit` (at most 250,000 a response) before the last
        # page: paging advances by the rows received, but never more than are left, and a
        # page with none while rows remain would never end.
        left = max(0, page.row_count - offset)
        if len(page.rows) > min(self.page_size, left):
            raise fail(
                f"returned {len(page.rows)} rows where at most {min(self.page_size, left)} "
                f"were left of rowCount {page.row_count}"
            )
        if left and not page.rows:
            raise fail(f"returned no rows at offset {offset} of rowCount {page.row_count}")

    def _request(self, prop: str, where: str, body: dict[str, Any]) -> Any:
        path = f"/v1beta/properties/{prop}:runReport"
        try:
            return with_token(
                self.tokens,
                lambda headers: self.http.request_json("POST", path, json=body, headers=headers),
            )
        except HttpStatusError as exc:
            raise self._refusal(exc, prop, where) from None

    def _refusal(self, exc: HttpStatusError, prop: str, where: str) -> Exception:
        """A typed error for a 4xx GA4 will not change its mind about."""
        status, message = _google_error(exc.body)
        identity = self.tokens.identity
        if exc.status == 429 and (quota := _exhausted_quota(message)):
            return self._exhausted(prop, where, quota, message)
        if exc.status == 403 and "scope" in message:
            return ConfigurationError(
                f"GA4 refused the token of {identity} for property {prop}: {message}",
                hint=f"ask for the {ANALYTICS_READONLY} scope when creating the token provider",
            )
        if exc.status == 403:
            return ConfigurationError(
                f"GA4 denied {identity} access to property {prop} "
                f"({status or exc.status}: {message})",
                hint=(
                    f"in GA4 Admin → Property access management for property {prop}, add "
                    f"{identity} with the Viewer role (and check the property id is right)"
                ),
            )
        if exc.status == 401:  # a renewed token was refused too
            return ConfigurationError(
                f"GA4 rejected the access token of {identity} for property {prop} "
                f"({status or exc.status}: {message})",
                hint="check the service-account key and the token endpoint it uses",
            )
        if exc.status == 400:
            return ConfigurationError(
                f"{where}: GA4 rejected the report request ({status or 400}): {message}",
                hint=f"check the dimension and metric names against {API_SCHEMA_URL}",
            )
        return exc

    # -- quota -----------------------------------------------------------------------------

    def _check_quota(self, prop: str, where: str) -> None:
        """Refuse to send the next request if the last reading (this report's, or another
        report's or run's) left too little to spend."""
        last = shared_state.last_reading(SOURCE, _quota_subject(prop))
        if last is None:
            return
        reading, read_at = _loaded(last[0]), last[1]
        for quota, period, next_refill, refill_text in _BUDGETS:
            status = getattr(reading, quota)
            floor = getattr(self.floor, quota)
            refills_at = next_refill(read_at)
            if status is None or status.remaining >= floor or datetime.now(UTC) >= refills_at:
                continue
            raise GA4QuotaExhaustedError(
                f"{where}: stopped before the next request: only {status.remaining} {period} "
                f"tokens left (floor {floor}); the {period} quota refills {refill_text} "
                f"({refills_at:%Y-%m-%d %H:%M} UTC)",
                quota=quota,
                remaining=status.remaining,
                refills_at=refills_at,
                hint=f"re-run after {refills_at:%Y-%m-%d %H:%M} UTC; nothing was stored",
            )

    def _exhausted(self, prop: str, where: str, quota: str, message: str) -> Exception:
        """GA4's 429 for a spent budget: remembered as nothing left, so no report or run asks
        again before the refill."""
        now = datetime.now(UTC)
        last = shared_state.last_reading(SOURCE, _quota_subject(prop))
        reading = _stored(_loaded(last[0])) if last else _stored(PropertyQuota())
        reading[quota] = {"consumed": 0, "remaining": 0}
        shared_state.remember_reading(SOURCE, _quota_subject(prop), reading, now)
        period, next_refill, refill_text = next(
            (period, refill, text) for name, period, refill, text in _BUDGETS if name == quota
        )
        refills_at = next_refill(now)
        return GA4QuotaExhaustedError(
            f"{where}: GA4 refused the request: {message} The {period} quota refills "
            f"{refill_text} ({refills_at:%Y-%m-%d %H:%M} UTC); nothing of this report was stored",
            quota=quota,
            remaining=0,
            refills_at=refills_at,
            hint=f"re-run after {refills_at:%Y-%m-%d %H:%M} UTC (no request is sent before)",
        )


def _bad_response(where: str, problem: str) -> GA4ResponseError:
    return GA4ResponseError(
        f"{where}: malformed runReport response: {problem}",
        hint="re-run the sync; nothing from this report was stored. If it persists, "
        "report the response to the GA4 Data API issue tracker",
    )


def _merged_metadata(pages: list[ReportPage]) -> ReportMetadata:
    """A flag raised on any page holds for the report."""
    first = pages[0].metadata
    sampling: list[SamplingMetadata] = []
    for page in pages:
        sampling.extend(s for s in page.metadata.sampling if s not in sampling)
    return ReportMetadata(
        data_loss_from_other_row=any(p.metadata.data_loss_from_other_row for p in pages),
        subject_to_thresholding=any(p.metadata.subject_to_thresholding for p in pages),
        sampling=tuple(sampling),
        currency_code=first.currency_code,
        time_zone=first.time_zone,
        empty_reason=first.empty_reason,
    )
