"""The Google Analytics 4 Data API v1beta `properties/{id}:runReport`, seeded and deterministic.

Figures are a pure function of (seed, property, date, dimension values): a property's daily
sessions (weekday-shaped) are split over each dimension's values by fixed popularity
weights, and the other metrics follow from sessions by per-combination rates. So a date's
figures are the same in every report that breaks it down the same way, and a report without
`date` is the sum of its days.

What makes GA4 awkward to sync is simulated too:
- revisions: a date within `revision_days` of the simulated "today" is incomplete, and each
  pull of it by a report (a request at offset 0 with the same dimensions and metrics; later
  pages of the same read see the same figures) returns higher counts than that report's pull
  before; older dates never change. Which rows exist does not change, only their figures.
  Revisions are counted per report so that the reports one job pulls together see the same
  state of a date, whichever runs first;
- the "(other)" row: beyond `cardinality_limit` dimension combinations, the least popular
  are folded into one row of "(other)" values and `dataLossFromOtherRow` is set;
- property quotas: each request costs 1 token + 1 per 10,000 rows it returns, from hourly
  and daily budgets that only a reset or the control API refills; an exhausted budget
  answers 429 RESOURCE_EXHAUSTED, as GA4 does;
- proto3 JSON: fields at their default (0, false, empty) are left out, a report with no rows
  has neither `rows` nor `rowCount`, int64 counts are strings.
Reference: docs/sources/ga4_api.md.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sync_platform_simulator.google_oauth import GoogleApiError, google_oauth, require_bearer

DEFAULT_TOKEN = "sim-ga4-token"
DEFAULT_PROPERTY_ID = "123456789"
ANALYTICS_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/analytics.readonly",
        "https://www.googleapis.com/auth/analytics",
    }
)
DEFAULT_LIMIT = 10_000  # rows when a request gives no limit
MAX_LIMIT = 250_000  # GA4 never returns more per request, whatever the limit asks
ROWS_PER_EXTRA_TOKEN = 10_000
REPORTS_REMEMBERED = 8
MAX_DIMENSIONS = 9
MAX_METRICS = 10
OTHER = "(other)"
SCHEMA_URL = "https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema"
PERMISSION_DENIED = (
    "User does not have sufficient permissions for this property. To learn more about "
    "Property ID, see https://developers.google.com/analytics/devguides/reporting/data/v1/"
    "property-id."
)
QUOTAS_URL = "https://developers.google.com/analytics/devguides/reporting/data/v1/quotas"

SITE_PAGES = ["/", "/stock", "/finance", "/contact", "/service", "/about", "/sell-your-car"]
DEFAULT_LANDING_PAGES = 150


def landing_pages(count: int) -> list[str]:
    """landingPage's values, most popular first: the site's pages, then a page per vehicle."""
    return [*SITE_PAGES, *(f"/stock/STK{n:06d}" for n in range(count - len(SITE_PAGES)))]


# Each dimension's values, most popular first (date is generated from the range).
DIMENSION_VALUES: dict[str, list[str]] = {
    "sessionSource": [
        "google", "(direct)", "facebook.com", "carsales.com.au", "bing", "instagram.com",
        "newsletter", "youtube.com", "duckduckgo", "chatgpt.com",
    ],
    "sessionMedium": ["organic", "(none)", "cpc", "referral", "social", "email"],
    "deviceCategory": ["mobile", "desktop", "tablet"],
    "landingPage": landing_pages(DEFAULT_LANDING_PAGES),  # GA4Settings.landing_pages
    "eventName": [
        "page_view", "session_start", "user_engagement", "scroll", "first_visit", "click",
        "view_item", "form_start", "generate_lead", "phone_call",
    ],
    "country": [
        "Australia", "New Zealand", "United States", "United Kingdom", "India", "Philippines",
        "Canada", "Singapore", "(not set)", "Germany", "China",
    ],
}  # fmt: skip
DIMENSIONS = {"date", *DIMENSION_VALUES}
METRIC_TYPES = {
    "sessions": "TYPE_INTEGER",
    "totalUsers": "TYPE_INTEGER",
    "newUsers": "TYPE_INTEGER",
    "screenPageViews": "TYPE_INTEGER",
    "engagementRate": "TYPE_FLOAT",
    "averageSessionDuration": "TYPE_SECONDS",
    "totalRevenue": "TYPE_CURRENCY",  # in the property's currency (metadata.currencyCode)
    "keyEvents": "TYPE_INTEGER",
    "eventCount": "TYPE_INTEGER",
    "conversions": "TYPE_INTEGER",  # GA4's old name for keyEvents: the same count
}
WEEKDAY_FACTORS = (1.06, 1.08, 1.05, 1.03, 0.96, 0.83, 0.79)  # Monday first
UNSUPPORTED_FIELDS = frozenset(
    {
        "dimensionFilter", "metricFilter", "orderBys", "metricAggregations", "cohortSpec",
        "comparisons",
    }
)  # fmt: skip
KNOWN_FIELDS = frozenset(
    {
        "property", "dateRanges", "dimensions", "metrics", "limit", "offset", "keepEmptyRows",
        "returnPropertyQuota", "currencyCode",
    }
)  # fmt: skip
RELATIVE_DAYS = re.compile(r"^(\d+)daysAgo$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CorruptionMode = Literal[
    "header_mismatch", "non_numeric_metric", "missing_row_count", "short_page", "empty_page"
]


class GA4Property(BaseModel):
    """A property the simulated service account may read."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default=DEFAULT_PROPERTY_ID, pattern=r"^\d+$")
    time_zone: str = "Australia/Sydney"
    currency_code: str = "AUD"
    sessions_per_day: int | None = Field(default=None, ge=0, description="None: from the seed")
    subject_to_thresholding: bool = False
    sampled: bool = False
    # Days the property collected nothing (a tag removed, consent refused): no sessions, so
    # runReport serves no rows for them (rows with only zero metrics are left out, and
    # rowCount with them) while other days are served as usual.
    days_without_data: list[date] = Field(default_factory=list)


class GA4Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    properties: list[GA4Property] = Field(default_factory=lambda: [GA4Property()])
    static_token: str = DEFAULT_TOKEN
    today: date | None = Field(default=None, description="None: the real current UTC date")
    revision_days: int = Field(default=2, ge=0)
    cardinality_limit: int = Field(default=50_000, ge=2)
    tokens_per_hour: int = Field(default=40_000, ge=0)
    tokens_per_day: int = Field(default=200_000, ge=0)
    # "The API returns a maximum of 250,000 rows per request, no matter how many you ask
    # for" (RunReportRequest.limit): a page may hold fewer rows than asked before the last
    # one. Lower it to serve that at test size.
    max_rows_per_response: int = Field(default=MAX_LIMIT, ge=1, le=MAX_LIMIT)
    # How many landingPage values there are (a bigger site has more vehicle pages). With
    # `sessions_per_day` high enough for the least popular page to get a session a day, a
    # report by date and landingPage has this many rows a day.
    landing_pages: int = Field(default=DEFAULT_LANDING_PAGES, ge=len(SITE_PAGES), le=1_000_000)


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) fixed by `parts`: the simulator's only source of variety."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Rates:
    """How one dimension combination's other metrics follow from its sessions."""

    weight: float  # share of the property's sessions
    noise: float
    users: float
    new_users: float
    views: float
    engaged: float
    duration: float
    events: float
    key_events: float
    revenue: float  # per key event


@dataclass
class Figures:
    """Additive figures of one row; ratios are derived when the row is written."""

    sessions: int = 0
    users: int = 0
    new_users: int = 0
    views: int = 0
    engaged: int = 0
    duration: float = 0.0
    events: int = 0
    key_events: int = 0
    revenue: float = 0.0

    def add(self, other: Figures) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def metric(self, name: str) -> str:
        if name == "engagementRate":
            return repr(self.engaged / self.sessions) if self.sessions else "0"
        if name == "averageSessionDuration":
            return repr(self.duration / self.sessions) if self.sessions else "0"
        if name == "totalRevenue":
            return f"{self.revenue:.2f}"
        value = {
            "sessions": self.sessions,
            "totalUsers": self.users,
            "newUsers": self.new_users,
            "screenPageViews": self.views,
            "keyEvents": self.key_events,
            "conversions": self.key_events,
            "eventCount": self.events,
        }[name]
        return str(value)


ReportRow = tuple[list[str], Figures]  # dimension values in request order, figures
Shares = dict[date, float]  # each date a report covers: the share of its final figures seen
Shape = tuple[tuple[str, ...], tuple[str, ...]]  # a report's dimensions and metrics


@dataclass(frozen=True)
class ReportRequest:
    start: date
    end: date
    dimensions: list[str]
    metrics: list[str]
    limit: int
    offset: int
    keep_empty_rows: bool
    return_quota: bool

    @property
    def shape(self) -> Shape:
        """What makes two requests the same report (its revisions are counted together)."""
        return tuple(self.dimensions), tuple(self.metrics)


class Corruption(BaseModel):
    """Damage the next `times` runReport responses after letting `after` through intact."""

    model_config = ConfigDict(extra="forbid")

    mode: CorruptionMode
    times: int = Field(default=1, ge=0)
    after: int = Field(default=0, ge=0)


class ResourceExhausted(BaseModel):
    """Answer the next `times` runReport requests with 429 RESOURCE_EXHAUSTED (a transient
    concurrent-requests limit, as opposed to a spent token budget)."""

    model_config = ConfigDict(extra="forbid")

    times: int = Field(default=1, ge=0)


class QuotaBudget(BaseModel):
    """Set what is left of a property's budgets (every property's if no id is given)."""

    model_config = ConfigDict(extra="forbid")

    property_id: str | None = None
    tokens_per_hour: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)


class SimulatedToday(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: date | None = Field(alias="date", description="None: the real current UTC date")


class GA4Data:
    """The simulated properties, their quotas, pulls and pending faults; counters under one
    lock, report figures computed outside it (they depend only on the arguments)."""

    def __init__(self, seed: int, settings: GA4Settings | None = None):
        self.seed = seed
        self.settings = (settings or GA4Settings()).model_copy(deep=True)
        self.properties = {prop.id: prop for prop in self.settings.properties}
        self.lock = threading.Lock()
        self._today = self.settings.today
        # pulls and the today of each latest pull, by (property, date, report shape)
        self._pulls: Counter[tuple[str, date, Shape]] = Counter()
        self._pulled_on: dict[tuple[str, date, Shape], date] = {}
        self._tokens_left = {
            prop: [self.settings.tokens_per_hour, self.settings.tokens_per_day]
            for prop in self.properties
        }
        self._project_tokens_left = math.floor(self.settings.tokens_per_hour * 0.35)
        self._corruption: Corruption | None = None
        self._exhausted_next = 0
        self._rates: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Rates] = {}
        self._reports: OrderedDict[tuple, tuple[list[ReportRow], bool]] = OrderedDict()
        values = DIMENSION_VALUES | {"landingPage": landing_pages(self.settings.landing_pages)}
        self._weights = {
            dimension: _popularity(seed, dimension, names) for dimension, names in values.items()
        }

    # -- the clock and its pulls -----------------------------------------------------------

    def today(self) -> date:
        return self._today or datetime.now(UTC).date()

    def set_today(self, today: date | None) -> None:
        self._today = today

    def shares(
        self, prop: str, start: date, end: date, today: date, offset: int, shape: Shape = ((), ())
    ) -> Shares:
        """The dates a read serves (none after today), each with the share of its final
        figures this read sees. A read from offset 0 is a new pull of its report `shape`;
        its later pages belong to the pull already counted, so they see the same figures."""
        already = 0 if offset == 0 else 1
        with self.lock:
            return {
                day: self.completeness(
                    (today - day).days, max(self._pulls[(prop, day, shape)] - already, 0)
                )
                for day in _days(start, min(end, today))
            }

    def latest_shares(
        self, prop: str, start: date, end: date, today: date, shape: Shape = ((), ())
    ) -> Shares:
        """As `shares`, but each date as its latest pull saw it, at that pull's today (so a
        date that has aged since keeps the figures it was last served with); a date never
        pulled as the next pull will see it."""
        with self.lock:
            return {
                day: self.completeness(
                    (self._pulled_on.get((prop, day, shape), today) - day).days,
                    max(self._pulls[(prop, day, shape)] - 1, 0),
                )
                for day in _days(start, min(end, today))
            }

    def record_pull(
        self, prop: str, days: Iterable[date], today: date, shape: Shape = ((), ())
    ) -> None:
        with self.lock:
            for day in days:
                self._pulls[(prop, day, shape)] += 1
                self._pulled_on[(prop, day, shape)] = today

    def pulls(self) -> list[dict[str, Any]]:
        """Pulls per property and date, every report together."""
        counts: Counter[tuple[str, date]] = Counter()
        with self.lock:
            for (prop, day, _shape), count in self._pulls.items():
                counts[(prop, day)] += count
        return [
            {"property_id": p, "date": d.isoformat(), "count": n}
            for (p, d), n in sorted(counts.items())
        ]

    # -- quota -----------------------------------------------------------------------------

    def charge(self, prop: str, tokens: int) -> tuple[int, int, int]:
        """Take `tokens` from the property's budgets; (hour, day, project-hour) left after.
        Raises 429 when a budget cannot pay, as GA4 does once a quota is exhausted."""
        with self.lock:
            left = self._tokens_left[prop]
            for index, period in ((0, "hour"), (1, "day")):
                if left[index] < tokens:
                    raise GoogleApiError(
                        429,
                        "RESOURCE_EXHAUSTED",
                        f"Exhausted property tokens per {period}. Refer to {QUOTAS_URL}.",
                    )
            left[0] -= tokens
            left[1] -= tokens
            self._project_tokens_left = max(0, self._project_tokens_left - tokens)
            return left[0], left[1], self._project_tokens_left

    def set_budget(self, budget: QuotaBudget) -> None:
        with self.lock:
            for prop, left in self._tokens_left.items():
                if budget.property_id in (None, prop):
                    if budget.tokens_per_hour is not None:
                        left[0] = budget.tokens_per_hour
                    if budget.tokens_per_day is not None:
                        left[1] = budget.tokens_per_day

    def budgets(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {
                prop: {"tokens_per_hour": hour, "tokens_per_day": day}
                for prop, (hour, day) in self._tokens_left.items()
            }

    # -- faults ----------------------------------------------------------------------------

    def set_corruption(self, corruption: Corruption | None) -> None:
        with self.lock:
            self._corruption = corruption.model_copy() if corruption else None

    def take_corruption(self) -> CorruptionMode | None:
        with self.lock:
            plan = self._corruption
            if plan is None or plan.times == 0:
                return None
            if plan.after:
                plan.after -= 1
                return None
            plan.times -= 1
            return plan.mode

    def set_exhausted(self, times: int) -> None:
        with self.lock:
            self._exhausted_next = times

    def take_exhausted(self) -> bool:
        with self.lock:
            if self._exhausted_next:
                self._exhausted_next -= 1
                return True
            return False

    # -- figures ---------------------------------------------------------------------------

    def report_rows(
        self, prop: str, request: ReportRequest, shares: Shares
    ) -> tuple[list[ReportRow], bool]:
        """`build_rows`, remembered for the last few reports so paging through one does not
        rebuild it for every page. The dates and their shares are all the rows depend on
        besides the dimensions, so they are the key, whoever asks (a read or a peek)."""
        key = (prop, tuple(request.dimensions), request.keep_empty_rows, tuple(shares.items()))
        with self.lock:
            if key in self._reports:
                self._reports.move_to_end(key)
                return self._reports[key]
        built = build_rows(self, prop, request, shares)
        with self.lock:
            self._reports[key] = built
            while len(self._reports) > REPORTS_REMEMBERED:
                self._reports.popitem(last=False)
        return built

    def sessions_per_day(self, prop: str) -> int:
        configured = self.properties[prop].sessions_per_day
        if configured is not None:
            return configured
        return 300 + math.floor(2700 * _unit(self.seed, "ga4", prop))

    def day_sessions(self, prop: str, day: date) -> float:
        if day in self.properties[prop].days_without_data:
            return 0.0
        noise = 0.85 + 0.3 * _unit(self.seed, "ga4", prop, day.toordinal())
        return self.sessions_per_day(prop) * WEEKDAY_FACTORS[day.weekday()] * noise

    def weight(self, dimensions: tuple[str, ...], values: tuple[str, ...]) -> float:
        """A combination's share of the property's sessions."""
        return math.prod(self._weights[d][v] for d, v in zip(dimensions, values, strict=True))

    def rates(self, prop: str, dimensions: tuple[str, ...], values: tuple[str, ...]) -> Rates:
        key = (prop, dimensions, values)
        rates = self._rates.get(key)
        if rates is None:
            weight = self.weight(dimensions, values)

            def draw(name: str, low: float, high: float) -> float:
                return low + (high - low) * _unit(self.seed, prop, dimensions, values, name)

            rates = Rates(
                weight=weight,
                noise=draw("noise", 0.8, 1.2),
                users=draw("users", 0.75, 0.95),
                new_users=draw("new", 0.3, 0.7),
                views=draw("views", 1.5, 4.5),
                engaged=draw("engaged", 0.45, 0.8),
                duration=draw("duration", 40.0, 320.0),
                events=draw("events", 6.0, 14.0),
                key_events=draw("key", 0.01, 0.06),
                revenue=draw("revenue", 40.0, 900.0),
            )
            self._rates[key] = rates
        return rates

    def completeness(self, age_days: int, earlier_pulls: int) -> float:
        """Share of a date's final figures a pull sees: 1 once the date is old enough."""
        if age_days > self.settings.revision_days:
            return 1.0
        return 1 - (0.4 / 2**age_days) * 0.5**earlier_pulls

    def figures(self, prop: str, day: date, rates: Rates, complete: float) -> Figures:
        final = math.floor(self.day_sessions(prop, day) * rates.weight * rates.noise)
        if final <= 0:
            return Figures()
        sessions = max(1, math.floor(final * complete))  # a row that exists keeps existing
        users = max(1, round(sessions * rates.users))
        return Figures(
            sessions=sessions,
            users=users,
            new_users=round(users * rates.new_users),
            views=max(1, round(sessions * rates.views)),
            engaged=round(sessions * rates.engaged),
            duration=round(sessions * rates.duration, 3),
            events=max(1, round(sessions * rates.events)),
            key_events=(key_events := round(sessions * rates.key_events)),
            revenue=round(key_events * rates.revenue, 2),
        )

    def combinations(self, prop: str, dimensions: tuple[str, ...]) -> list[tuple[str, ...]]:
        """Value combinations that can have sessions on some day, most popular first."""
        ceiling = self.sessions_per_day(prop) * max(WEEKDAY_FACTORS) * 1.15 * 1.2

        def expand(index: int, prefix: tuple[str, ...], weight: float) -> Iterator[tuple]:
            if weight * ceiling < 1:
                return
            if index == len(dimensions):
                yield prefix
                return
            for value, share in self._weights[dimensions[index]].items():
                yield from expand(index + 1, (*prefix, value), weight * share)

        found = list(expand(0, (), 1.0))
        return sorted(found, key=lambda values: (-self.weight(dimensions, values), values))


def _popularity(seed: int, dimension: str, values: list[str]) -> dict[str, float]:
    """Each value's share of its dimension: Zipf by rank, jittered by the seed."""
    raw = {
        value: (0.7 + 0.6 * _unit(seed, dimension, value)) / (rank + 1) ** 1.1
        for rank, value in enumerate(values)
    }
    total = sum(raw.values())
    return {value: share / total for value, share in raw.items()}


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


# -- building a report -------------------------------------------------------------------


def build_rows(
    ga4: GA4Data, prop: str, request: ReportRequest, shares: Shares
) -> tuple[list[ReportRow], bool]:
    """Every row of the report over the dates of `shares`, each seen at its share of its final
    figures, in order, and whether an "(other)" row folded combinations."""
    others = tuple(d for d in request.dimensions if d != "date")
    combinations = ga4.combinations(prop, others)
    folded = len(combinations) > ga4.settings.cardinality_limit
    kept = combinations[: ga4.settings.cardinality_limit - 1] if folded else combinations
    groups: list[tuple[tuple[str, ...], list[tuple[str, ...]]]] = [(c, [c]) for c in kept]
    if folded:
        other = tuple(OTHER for _ in others)
        groups.append((other, combinations[len(kept) :]))
    days = list(shares)
    by_day = "date" in request.dimensions

    def day_figures(day: date, members: list[tuple[str, ...]]) -> Figures:
        total = Figures()
        for values in members:
            total.add(ga4.figures(prop, day, ga4.rates(prop, others, values), shares[day]))
        return total

    rows: list[ReportRow] = []
    for values, members in groups:
        named = dict(zip(others, values, strict=True))
        if by_day:
            for day in days:
                named["date"] = day.strftime("%Y%m%d")
                row = [named[d] for d in request.dimensions]
                rows.append((row, day_figures(day, members)))
        elif days:
            total = Figures()
            for day in days:
                total.add(day_figures(day, members))
            rows.append(([named[d] for d in request.dimensions], total))
    if not request.keep_empty_rows:
        rows = [(row, figures) for row, figures in rows if figures.sessions]
    rows.sort(key=lambda item: item[0])
    return rows, folded


def parse_request(body: Any, today: date) -> ReportRequest:
    """The runReport body, checked as GA4 checks it (400 INVALID_ARGUMENT otherwise)."""
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    for name in body:
        if name in UNSUPPORTED_FIELDS:
            raise invalid(f"The simulator does not support {name}.")
        if name not in KNOWN_FIELDS:
            raise invalid(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
            )
    ranges = body.get("dateRanges") or []
    if len(ranges) != 1 or not isinstance(ranges[0], dict):
        raise invalid("The simulator supports exactly one dateRange.")
    start = _date(ranges[0].get("startDate"), today, "startDate")
    end = _date(ranges[0].get("endDate"), today, "endDate")
    if start > end:
        raise invalid(f"Invalid date range: startDate {start} is after endDate {end}.")
    dimensions = _names(body.get("dimensions"), "dimension", DIMENSIONS, MAX_DIMENSIONS)
    metrics = _names(body.get("metrics"), "metric", set(METRIC_TYPES), MAX_METRICS)
    if not dimensions and not metrics:
        raise invalid("A report needs at least one dimension or metric.")
    limit = _count(body.get("limit"), "limit") or DEFAULT_LIMIT
    return ReportRequest(
        start=start,
        end=end,
        dimensions=dimensions,
        metrics=metrics,
        limit=min(limit, MAX_LIMIT),
        offset=_count(body.get("offset"), "offset"),
        keep_empty_rows=body.get("keepEmptyRows") is True,
        return_quota=body.get("returnPropertyQuota") is True,
    )


def invalid(message: str) -> GoogleApiError:
    return GoogleApiError(400, "INVALID_ARGUMENT", message)


def _date(value: Any, today: date, field: str) -> date:
    text = str(value or "")
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    if match := RELATIVE_DAYS.match(text):
        return today - timedelta(days=int(match[1]))
    try:
        if ISO_DATE.match(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise invalid(f"Invalid {field} '{text}'. Use YYYY-MM-DD, today, yesterday or NdaysAgo.")


def _names(raw: Any, kind: str, known: set[str], most: int) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise invalid(f"{kind}s must be a list of objects with a name.")
    names = [str(item.get("name", "")) for item in raw]
    for name in names:
        if name not in known:
            raise invalid(
                f"Field {name} is not a valid {kind}. For a list of valid dimensions and "
                f"metrics, see {SCHEMA_URL} "
            )
    if len(set(names)) != len(names):
        raise invalid(f"Each {kind} may appear only once in a request.")
    if len(names) > most:
        raise invalid(f"Requests are limited to {most} {kind}s.")
    return names


def _count(raw: Any, name: str) -> int:
    """An int64 request field: GA4 takes a JSON number or a decimal string."""
    if raw is None:
        return 0
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise invalid(f"Invalid value at '{name}' (TYPE_INT64), \"{raw}\"") from None
    if value < 0:
        raise invalid(f"{name} must be non-negative.")
    return value


def _status(consumed: int, remaining: int) -> dict[str, int]:
    """A QuotaStatus as proto3 JSON writes it: zero fields left out."""
    return {k: v for k, v in (("consumed", consumed), ("remaining", remaining)) if v}


def report_body(
    ga4: GA4Data, prop: str, request: ReportRequest, rows: list[ReportRow], folded: bool
) -> dict[str, Any]:
    settings = ga4.properties[prop]
    served = min(request.limit, ga4.settings.max_rows_per_response)
    page = rows[request.offset : request.offset + served]
    body: dict[str, Any] = {
        "dimensionHeaders": [{"name": name} for name in request.dimensions],
        "metricHeaders": [{"name": m, "type": METRIC_TYPES[m]} for m in request.metrics],
    }
    if page:
        body["rows"] = [
            {
                "dimensionValues": [{"value": value} for value in values],
                "metricValues": [{"value": figures.metric(m)} for m in request.metrics],
            }
            for values, figures in page
        ]
    if rows:
        body["rowCount"] = len(rows)
    metadata: dict[str, Any] = {
        "currencyCode": settings.currency_code,
        "timeZone": settings.time_zone,
    }
    if folded:
        metadata["dataLossFromOtherRow"] = True
    if settings.subject_to_thresholding:
        metadata["subjectToThresholding"] = True
    if settings.sampled:
        space = sum(figures.events for _, figures in rows) or 1
        metadata["samplingMetadatas"] = [
            {"samplesReadCount": str(max(1, space // 10)), "samplingSpaceSize": str(space)}
        ]
    body["metadata"] = metadata
    body["kind"] = "analyticsData#runReport"
    return body


def corrupt(body: dict[str, Any], mode: CorruptionMode) -> None:
    """Damage a response the way a broken upstream would."""
    rows = body.get("rows") or []
    if mode == "header_mismatch":
        if rows and rows[0]["metricValues"]:
            rows[0]["metricValues"].pop()
        elif rows:
            rows[0]["dimensionValues"].pop()
        else:
            body["dimensionHeaders"].append({"name": "unexpected"})
    elif mode == "non_numeric_metric" and rows and rows[0]["metricValues"]:
        rows[0]["metricValues"][0]["value"] = "(not set)"
    elif mode == "missing_row_count":
        body.pop("rowCount", None)
    elif mode == "short_page" and rows:
        rows.pop()  # a row that would be served again from the next offset (not a fault)
    elif mode == "empty_page" and body.get("rowCount"):
        body.pop("rows", None)  # rowCount says rows remain, yet none come


# -- the API -----------------------------------------------------------------------------


def ga4_data(request: Request) -> GA4Data:
    """FastAPI dependency: the GA4 properties of the simulator serving this request."""
    return request.app.state.simulator.ga4


GA4 = Annotated[GA4Data, Depends(ga4_data)]
router = APIRouter(prefix="/ga4/v1beta")


def _server_errors(request: Request) -> int:
    """5xx answers served on this property's path so far (GA4 allows 10 an hour)."""
    path = request.url.path
    rows = request.app.state.simulator.stats.rows()
    return sum(row["count"] for row in rows if row["path"] == path and row["status"] >= 500)


@router.post("/properties/{property_id}:runReport")
def run_report(
    property_id: str,
    request: Request,
    ga4: GA4,
    body: Annotated[Any, Body()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    require_bearer(
        google_oauth(request),
        authorization,
        static_token=ga4.settings.static_token,
        scopes=ANALYTICS_SCOPES,
    )
    if not property_id.isdigit():
        raise invalid(f"Invalid property ID: {property_id}. A property ID is numeric.")
    if property_id not in ga4.properties:
        raise GoogleApiError(403, "PERMISSION_DENIED", PERMISSION_DENIED)
    if ga4.take_exhausted():
        raise GoogleApiError(
            429,
            "RESOURCE_EXHAUSTED",
            f"Exhausted concurrent requests quota. Refer to {QUOTAS_URL}.",
        )
    today = ga4.today()
    report = parse_request(body, today)
    shares = ga4.shares(property_id, report.start, report.end, today, report.offset, report.shape)
    rows, folded = ga4.report_rows(property_id, report, shares)
    response = report_body(ga4, property_id, report, rows, folded)
    cost = 1 + len(response.get("rows", [])) // ROWS_PER_EXTRA_TOKEN
    hour_left, day_left, project_left = ga4.charge(property_id, cost)
    if report.offset == 0:
        ga4.record_pull(property_id, shares, today, report.shape)
    if report.return_quota:
        errors = _server_errors(request)
        response["propertyQuota"] = {
            "tokensPerDay": _status(cost, day_left),
            "tokensPerHour": _status(cost, hour_left),
            "concurrentRequests": _status(0, 10),
            "serverErrorsPerProjectPerHour": _status(errors, max(0, 10 - errors)),
            "potentiallyThresholdedRequestsPerHour": _status(0, 120),
            "tokensPerProjectPerHour": _status(cost, project_left),
        }
    if mode := ga4.take_corruption():
        corrupt(response, mode)
    return JSONResponse(response)


# -- GA4's part of the control API ---------------------------------------------------------

control_router = APIRouter(prefix="/_sim/ga4")


@control_router.post("/reset")
def reset_ga4(request: Request, settings: Annotated[GA4Settings | None, Body()] = None) -> Any:
    """Regenerate GA4 alone (budgets, pulls, faults) from the simulator seed."""
    state = request.app.state.simulator
    settings = settings or GA4Settings()
    state.ga4 = GA4Data(state.seed, settings)
    state.settings.ga4 = settings.model_copy(deep=True)
    return {"properties": sorted(state.ga4.properties), "today": state.ga4.today().isoformat()}


@control_router.post("/today")
def set_today(today: SimulatedToday, ga4: GA4) -> dict[str, str]:
    ga4.set_today(today.day)
    return {"today": ga4.today().isoformat()}


@control_router.get("/pulls")
def pulls(ga4: GA4) -> dict[str, list[dict[str, Any]]]:
    """How often each (property, date) was pulled (reads from offset 0)."""
    return {"pulls": ga4.pulls()}


@control_router.post("/properties/{property_id}:peekReport")
def peek_report(property_id: str, ga4: GA4, body: Annotated[Any, Body()] = None) -> JSONResponse:
    """runReport's answer to this body as each date's latest pull served it (a date never
    pulled: as the next pull will), every row at once (limit and offset are checked, not
    applied), with no pull counted, no token spent and no fault: the source's state to
    compare a warehouse with."""
    if property_id not in ga4.properties:
        raise HTTPException(status_code=404, detail=f"no property {property_id}")
    today = ga4.today()
    report = parse_request(body, today)
    shares = ga4.latest_shares(property_id, report.start, report.end, today, report.shape)
    rows, folded = ga4.report_rows(property_id, report, shares)
    every_row = replace(report, limit=len(rows), offset=0)
    return JSONResponse(report_body(ga4, property_id, every_row, rows, folded))


@control_router.get("/quota")
def get_quota(ga4: GA4) -> dict[str, dict[str, int]]:
    return ga4.budgets()


@control_router.post("/quota")
def set_quota(budget: QuotaBudget, ga4: GA4) -> dict[str, dict[str, int]]:
    if budget.property_id is not None and budget.property_id not in ga4.properties:
        raise HTTPException(status_code=404, detail=f"no property {budget.property_id}")
    ga4.set_budget(budget)
    return ga4.budgets()


@control_router.post("/corrupt")
def set_corruption(corruption: Corruption, ga4: GA4) -> Corruption:
    ga4.set_corruption(corruption)
    return corruption


@control_router.delete("/corrupt")
def clear_corruption(ga4: GA4) -> dict[str, None]:
    ga4.set_corruption(None)
    return {"corrupt": None}


@control_router.post("/resource_exhausted")
def set_resource_exhausted(plan: ResourceExhausted, ga4: GA4) -> ResourceExhausted:
    ga4.set_exhausted(plan.times)
    return plan
