"""The HTTP layer against the simulator over real loopback HTTP."""

from __future__ import annotations

import time

import pytest

from sync_platform.errors import ConfigurationError, SourceUnavailableError
from sync_platform.sources.dealer_feed.client import DealerFeedClient
from sync_platform.sources.http_session import RetrySettings, parse_retry_after

QUICK = RetrySettings(attempts=4, wait_initial=0.01, wait_jitter=0.0, wait_max=0.05)


def client(simulator, retry=QUICK, **kwargs) -> DealerFeedClient:
    return DealerFeedClient(f"{simulator.url}/dealer", "sim-dealer-key", retry=retry, **kwargs)


def test_retry_after_wins_over_the_computed_backoff(simulator):
    simulator.faults(rate_limit_next=1, retry_after=1.5)
    started = time.monotonic()
    pages = list(client(simulator).pages("/api/v1/stock"))
    elapsed = time.monotonic() - started
    assert sum(len(page) for page in pages) == 200
    assert elapsed >= 1.5  # the computed backoff alone would have been 0.01 s


def test_a_server_asking_for_too_long_a_pause_is_capped(simulator):
    simulator.faults(rate_limit_next=1, retry_after=3600)
    settings = RetrySettings(attempts=3, wait_initial=0.01, wait_jitter=0.0, max_retry_after=0.2)
    started = time.monotonic()
    assert list(client(simulator, retry=settings).pages("/api/v1/stock"))
    assert time.monotonic() - started < 5


def test_retries_are_bounded_and_the_error_says_what_to_check(simulator):
    simulator.faults(fail_next=10)
    with pytest.raises(SourceUnavailableError) as caught:
        list(client(simulator).pages("/api/v1/stock"))
    message = str(caught.value)
    assert "dealer_feed: GET /api/v1/stock still failing after 4 attempts" in message
    assert "What to do: check that dealer_feed is up" in message
    served = sum(r["count"] for r in simulator.stats()["requests"] if r["status"] == 503)
    assert served == 4


def test_timeouts_are_retried(simulator):
    simulator.faults(hang_next=1, hang_seconds=2)
    pages = list(client(simulator, timeout_seconds=0.5).pages("/api/v1/stock"))
    assert sum(len(page) for page in pages) == 200


def test_unreachable_source_fails_with_the_source_named():
    dead = DealerFeedClient("http://127.0.0.1:9", "key", retry=QUICK)
    with pytest.raises(SourceUnavailableError, match="dealer_feed"):
        list(dead.pages("/api/v1/stock"))


def test_rejected_credentials_are_not_retried(simulator):
    bad = DealerFeedClient(f"{simulator.url}/dealer", "wrong-key", retry=QUICK)
    with pytest.raises(ConfigurationError, match="DEALER_FEED_API_KEY"):
        list(bad.pages("/api/v1/stock"))
    assert [r["status"] for r in simulator.stats()["requests"]] == [401]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        (None, None),
        ("garbage", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_retry_after_header_forms(header, expected):
    assert parse_retry_after(header) == expected


def test_an_empty_page_before_the_last_does_not_end_the_walk(simulator):
    simulator.reset(stock=5)
    simulator.faults(drop_keys=[{"key": "STK000001", "times": 1}])
    pages = list(client(simulator, page_size=1).pages("/api/v1/stock"))
    assert [record["StockNumber"] for page in pages for record in page] == [
        "STK000000",
        "STK000002",
        "STK000003",
        "STK000004",
    ]
