"""The GA4 Data API client against the simulated GA4 over real loopback HTTP: the token flow,
paging, typed rows, metadata, revisions, malformed responses, quota and error handling."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime, timedelta

import pytest

from sync_platform.errors import ConfigurationError, ErrorCategory, SourceUnavailableError
from sync_platform.sources.ga4 import (
    GA4_RETRY,
    GA4Client,
    GA4QuotaExhaustedError,
    GA4ResponseError,
    QuotaFloor,
)
from sync_platform.sources.google_auth import (
    ANALYTICS_READONLY,
    SPREADSHEETS_READONLY,
    ServiceAccountToken,
    StaticToken,
)

PROPERTY = "123456789"
TODAY = date(2026, 11, 23)
RUN_REPORT = f"/ga4/v1beta/properties/{PROPERTY}:runReport"
TOKEN_PATH = "/google/oauth2/token"
QUICK = dataclasses.replace(GA4_RETRY, wait_initial=0.01, wait_max=0.02, wait_jitter=0.0)
INTEGER_METRICS = [
    "sessions", "totalUsers", "newUsers", "screenPageViews", "keyEvents", "eventCount",
    "conversions",
]  # fmt: skip
OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))  # long settled: no revisions


@pytest.fixture
def ga4(simulator):
    """The session simulator with GA4 reset and its "today" fixed at TODAY."""
    simulator.ga4("POST", "/reset", {"today": TODAY.isoformat()})
    return simulator


def client(simulator, tokens=None, **kwargs) -> GA4Client:
    return GA4Client(
        tokens or StaticToken("sim-ga4-token"),
        property_id=PROPERTY,
        base_url=f"{simulator.url}/ga4",
        retry=kwargs.pop("retry", QUICK),
        **kwargs,
    )


class CountingToken(StaticToken):
    """The static token, counting how often the client asks for it."""

    def __init__(self) -> None:
        super().__init__("sim-ga4-token")
        self.calls = 0

    def token(self) -> str:
        self.calls += 1
        return super().token()


def sessions_by_date(rows) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["date"]] = totals.get(row["date"], 0) + row["sessions"]
    return totals


def test_service_account_key_to_token_to_report_end_to_end(ga4):
    key = ga4.google("GET", "/service_account")
    assert key["type"] == "service_account"
    assert key["token_uri"] == f"{ga4.url}{TOKEN_PATH}"
    tokens = ServiceAccountToken(key, [ANALYTICS_READONLY])
    with client(ga4, tokens) as api:
        first = api.run_report(
            start=TODAY - timedelta(days=6), end=TODAY, dimensions=["date"], metrics=["sessions"]
        )
        again = api.run_report(start=TODAY, end=TODAY, dimensions=[], metrics=["sessions"])
    assert [row["date"] for row in first.rows] == [
        (TODAY - timedelta(days=n)).strftime("%Y%m%d") for n in range(6, -1, -1)
    ]
    assert all(row["sessions"] > 0 for row in first.rows)
    assert first.row_count == 7 and first.pages == 1
    assert again.row_count == 1
    # One token for both reports: the provider caches it.
    assert ga4.served() == {(TOKEN_PATH, 200): 1, (RUN_REPORT, 200): 2}


def test_a_static_token_works_and_a_wrong_one_is_a_configuration_error(ga4):
    with client(ga4) as api:
        assert api.run_report(start=TODAY, end=TODAY, dimensions=[], metrics=["sessions"]).rows
    with client(ga4, StaticToken("not-the-token")) as api, pytest.raises(ConfigurationError) as err:
        api.run_report(start=TODAY, end=TODAY, dimensions=[], metrics=["sessions"])
    assert "rejected the access token" in str(err.value) and PROPERTY in str(err.value)
    assert ga4.served()[(RUN_REPORT, 401)] == 1  # not retried


def test_small_pages_add_up_to_the_same_rows_as_one_big_page(ga4):
    start, end = OCTOBER
    report = {"start": start, "end": end, "dimensions": ["date", "landingPage", "deviceCategory"]}
    tokens = CountingToken()
    with client(ga4, tokens, page_size=500) as api:
        paged = api.run_report(**report, metrics=["sessions", "engagementRate"])
    with client(ga4) as api:
        whole = api.run_report(**report, metrics=["sessions", "engagementRate"])
    assert whole.pages == 1 and whole.row_count > 1500
    assert paged.pages == math.ceil(whole.row_count / 500)
    assert paged.row_count == whole.row_count == len(paged.rows)
    assert paged.rows == whole.rows
    keys = [(row["date"], row["landingPage"], row["deviceCategory"]) for row in paged.rows]
    assert len(set(keys)) == len(keys)
    assert ga4.served() == {(RUN_REPORT, 200): paged.pages + 1}
    assert tokens.calls == paged.pages  # asked for each request, so a refresh applies


def test_metrics_are_typed_by_their_headers(ga4):
    metrics = [*INTEGER_METRICS, "engagementRate", "averageSessionDuration"]
    with client(ga4) as api:
        result = api.run_report(
            start=OCTOBER[0], end=OCTOBER[1], dimensions=["sessionSource"], metrics=metrics
        )
    assert result.metric_types == {
        **dict.fromkeys(INTEGER_METRICS, "TYPE_INTEGER"),
        "engagementRate": "TYPE_FLOAT",
        "averageSessionDuration": "TYPE_SECONDS",
    }
    assert result.rows
    for row in result.rows:
        assert isinstance(row["sessionSource"], str)
        for metric in INTEGER_METRICS:
            assert type(row[metric]) is int, (metric, row[metric])
        assert type(row["engagementRate"]) is float and 0 < row["engagementRate"] < 1
        assert type(row["averageSessionDuration"]) is float and row["averageSessionDuration"] > 0
    assert result.metadata.currency_code == "AUD"
    assert result.metadata.time_zone == "Australia/Sydney"
    assert result.quota is not None and result.quota.tokens_per_hour.remaining > 0


def test_the_other_row_and_metadata_flags(ga4):
    busy = {"id": PROPERTY, "sessions_per_day": 20_000}
    flagged = {**busy, "subject_to_thresholding": True, "sampled": True}
    report = {
        "start": OCTOBER[0],
        "end": OCTOBER[0] + timedelta(days=2),
        "dimensions": ["date", "landingPage"],
        "metrics": ["sessions"],
    }
    ga4.ga4("POST", "/reset", {"today": TODAY.isoformat(), "properties": [busy]})
    with client(ga4) as api:
        detailed = api.run_report(**report)
    ga4.ga4(
        "POST",
        "/reset",
        {"today": TODAY.isoformat(), "properties": [flagged], "cardinality_limit": 10},
    )
    with client(ga4) as api:
        folded = api.run_report(**report)

    assert not detailed.metadata.data_loss_from_other_row
    assert not detailed.metadata.subject_to_thresholding and not detailed.metadata.sampling
    assert all(row["landingPage"] != "(other)" for row in detailed.rows)
    assert folded.metadata.data_loss_from_other_row
    assert folded.metadata.subject_to_thresholding
    [sampling] = folded.metadata.sampling
    assert 0 < sampling.samples_read_count < sampling.sampling_space_size
    assert folded.row_count == 3 * 10 < detailed.row_count
    others = [row for row in folded.rows if row["landingPage"] == "(other)"]
    assert [row["date"] for row in others] == ["20261001", "20261002", "20261003"]
    # Folding loses detail, not sessions.
    assert sessions_by_date(folded.rows) == sessions_by_date(detailed.rows)


def test_recent_dates_are_revised_upwards_between_pulls_and_older_ones_are_stable(ga4):
    report = {
        "start": TODAY - timedelta(days=5),
        "end": TODAY + timedelta(days=3),  # the future has no rows
        "dimensions": ["date", "landingPage"],
        "metrics": ["sessions", "eventCount"],
    }
    with client(ga4) as api:
        first = api.run_report(**report)
    with client(ga4, page_size=200) as api:
        second = api.run_report(**report)  # several pages: one pull
    assert second.pages > 1
    # The same rows (even those of a session or two), only their figures move.
    assert min(row["sessions"] for row in first.rows) == 1
    keys = [(row["date"], row["landingPage"]) for row in first.rows]
    assert keys == [(row["date"], row["landingPage"]) for row in second.rows]
    assert first.row_count == second.row_count == len(keys)
    assert max(key[0] for key in keys) == TODAY.strftime("%Y%m%d")
    recent = {(TODAY - timedelta(days=n)).strftime("%Y%m%d") for n in range(3)}
    for before, after in zip(first.rows, second.rows, strict=True):
        if before["date"] in recent:
            assert after["sessions"] >= before["sessions"], before
            assert after["eventCount"] >= before["eventCount"], before
        else:
            assert after == before
    totals_before, totals_after = sessions_by_date(first.rows), sessions_by_date(second.rows)
    assert {day for day in totals_after if totals_after[day] > totals_before[day]} == recent
    pulls = ga4.ga4("GET", "/pulls")["pulls"]
    assert {row["date"]: row["count"] for row in pulls} == {
        (TODAY - timedelta(days=n)).isoformat(): 2 for n in range(6)
    }
    # Three days on, the same dates have settled: pulls no longer change them.
    ga4.ga4("POST", "/today", {"date": (TODAY + timedelta(days=3)).isoformat()})
    with client(ga4) as api:
        settled = api.run_report(**{**report, "end": TODAY})
        assert api.run_report(**{**report, "end": TODAY}).rows == settled.rows
    assert [(row["date"], row["landingPage"]) for row in settled.rows] == keys
    assert sessions_by_date(settled.rows) != totals_after


@pytest.mark.parametrize(
    ("mode", "after", "problem"),
    [
        ("header_mismatch", 0, r"page 1 \(offset 0\): .*row 1 has 1 dimension and 1 metric"),
        ("non_numeric_metric", 0, r"row 1 metric sessions \(TYPE_INTEGER\) is not numeric"),
        ("missing_row_count", 0, "2 rows came without a rowCount"),
        ("empty_page", 1, r"page 2 \(offset 2\): .* returned no rows at offset 2 of rowCount 6"),
    ],
)
def test_a_malformed_response_fails_the_whole_report_with_a_clear_error(ga4, mode, after, problem):
    ga4.ga4("POST", "/corrupt", {"mode": mode, "times": 1, "after": after})
    report = {
        "start": date(2026, 11, 1),
        "end": date(2026, 11, 6),
        "dimensions": ["date"],
        "metrics": ["sessions", "totalUsers"],
    }
    with client(ga4, page_size=2) as api:
        with pytest.raises(GA4ResponseError, match=problem) as err:
            api.run_report(**report)
        assert err.value.category is ErrorCategory.VALIDATION
        assert f"GA4 property {PROPERTY} (2026-11-01 to 2026-11-06)" in str(err.value)
        assert "nothing from this report was stored" in str(err.value)
        assert ga4.served() == {(RUN_REPORT, 200): after + 1}
        assert api.run_report(**report).row_count == 6  # the fault was one response only


@pytest.mark.parametrize(
    ("budget", "floor", "requests", "message"),
    [
        (
            {"tokens_per_hour": 53},
            QuotaFloor(tokens_per_hour=50, tokens_per_day=0),
            4,
            "only 49 hourly tokens left (floor 50); the hourly quota refills within the hour",
        ),
        (
            {"tokens_per_day": 501},
            QuotaFloor(tokens_per_hour=0, tokens_per_day=500),
            2,
            "only 499 daily tokens left (floor 500); the daily quota refills at midnight "
            "Pacific time",
        ),
    ],
)
def test_the_quota_floor_stops_cleanly_before_the_next_request(
    ga4, budget, floor, requests, message
):
    ga4.ga4("POST", "/quota", budget)
    report = {"start": date(2026, 11, 1), "end": date(2026, 11, 6)}
    with client(ga4, page_size=1, min_remaining_tokens=floor) as api:
        with pytest.raises(GA4QuotaExhaustedError) as err:
            api.run_report(**report, dimensions=["date"], metrics=["sessions"])
        assert ga4.served() == {(RUN_REPORT, 200): requests}
        # The next report does not even ask: the reading still holds.
        with pytest.raises(GA4QuotaExhaustedError):
            api.run_report(**report, dimensions=["date"], metrics=["sessions"])
    assert ga4.served() == {(RUN_REPORT, 200): requests}
    assert message in str(err.value) and err.value.category is ErrorCategory.NETWORK
    now = datetime.now(UTC)
    limit = timedelta(hours=1) if "tokens_per_hour" in budget else timedelta(days=1)
    assert now < err.value.refills_at <= now + limit
    left = ga4.ga4("GET", "/quota")[PROPERTY]
    assert min(left.values()) > 0  # the rest of the quota was not burned


def test_resource_exhausted_429_is_retried_to_success(ga4):
    ga4.ga4("POST", "/resource_exhausted", {"times": 1})
    raw = ga4.http.post(
        RUN_REPORT, json={}, headers={"Authorization": "Bearer sim-ga4-token"}
    ).json()
    assert raw["error"]["status"] == "RESOURCE_EXHAUSTED" and raw["error"]["code"] == 429
    ga4.ga4("POST", "/resource_exhausted", {"times": 2})
    with client(ga4) as api:
        result = api.run_report(start=TODAY, end=TODAY, dimensions=["date"], metrics=["sessions"])
    assert result.row_count == 1
    assert ga4.served() == {(RUN_REPORT, 429): 3, (RUN_REPORT, 200): 1}


def test_permission_denied_names_the_property_and_the_service_account(ga4):
    tokens = ServiceAccountToken(ga4.google("GET", "/service_account"), [ANALYTICS_READONLY])
    with client(ga4, tokens) as api, pytest.raises(ConfigurationError) as err:
        api.run_report(
            "properties/555000111", start=TODAY, end=TODAY, dimensions=[], metrics=["sessions"]
        )
    message = str(err.value)
    assert "555000111" in message and tokens.identity in message
    assert "PERMISSION_DENIED" in message
    assert "Property access management" in message and "Viewer" in message
    assert ga4.served()[("/ga4/v1beta/properties/555000111:runReport", 403)] == 1  # no retry


def test_a_token_without_the_analytics_scope_says_which_scope_to_ask_for(ga4):
    key = ga4.google("GET", "/service_account")
    api = client(ga4, ServiceAccountToken(key, [SPREADSHEETS_READONLY]))
    with api, pytest.raises(ConfigurationError, match="insufficient authentication scopes") as err:
        api.run_report(start=TODAY, end=TODAY, dimensions=[], metrics=["sessions"])
    assert ANALYTICS_READONLY in str(err.value)


def test_an_invalid_metric_quotes_googles_message(ga4):
    with client(ga4) as api, pytest.raises(ConfigurationError) as err:
        api.run_report(start=TODAY, end=TODAY, dimensions=["date"], metrics=["sesions"])
    assert "Field sesions is not a valid metric" in str(err.value)
    assert "api-schema" in str(err.value)
    assert ga4.served() == {(RUN_REPORT, 400): 1}


def test_server_errors_are_retried_a_few_times_and_the_breaker_opens_before_ten(ga4):
    ga4.faults(fail_next=50)
    report = {"start": TODAY, "end": TODAY, "dimensions": [], "metrics": ["sessions"]}
    with client(ga4) as api:
        with pytest.raises(SourceUnavailableError, match="still failing after 3 attempts"):
            api.run_report(**report)
        for _ in range(2):
            with pytest.raises(SourceUnavailableError, match="circuit breaker is open"):
                api.run_report(**report)
    served = ga4.served()
    assert served == {(RUN_REPORT, 503): GA4_RETRY.breaker_fail_max}
    assert GA4_RETRY.breaker_fail_max < 10 and GA4_RETRY.attempts <= 3
