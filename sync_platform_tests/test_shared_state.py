"""Circuit breakers and rate limits hold across processes once bound to the warehouse
(Dagster runs every step in a process of its own)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

from sync_platform.errors import SourceUnavailableError
from sync_platform.sources import shared_state
from sync_platform.sources.dealer_feed.client import DealerFeedClient
from sync_platform.sources.http_session import RetrySettings, reset_breakers
from sync_platform.sources.seller_sheet.client import read_limiter
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.platform_tables import sync_circuit_breakers

FAIL_FAST = RetrySettings(
    attempts=1, wait_initial=0, wait_jitter=0, breaker_fail_max=2, breaker_reset_seconds=120
)


@pytest.fixture
def bound(warehouse_url):
    engine = create_warehouse_engine(warehouse_url)
    shared_state.share_through(engine)
    yield engine
    reset_breakers()
    shared_state.unbind()
    engine.dispose()


def _another_process(script: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout.strip()


def test_a_breaker_opened_in_one_process_is_open_in_another(simulator, warehouse_url, bound):
    simulator.faults(down=True)
    client = DealerFeedClient(f"{simulator.url}/dealer", "sim-dealer-key", retry=FAIL_FAST)
    for _ in range(2):
        with pytest.raises(SourceUnavailableError, match="still failing"):
            next(client.pages("/api/v1/stock"))
    with bound.connect() as connection:
        row = connection.execute(
            sa.select(sync_circuit_breakers).where(sync_circuit_breakers.c.name == "dealer_feed")
        ).one()
    assert row.state == "open" and row.opened_at is not None
    served = sum(simulator.served("/dealer").values())

    said = _another_process(
        f"""
        from sync_platform.errors import SourceUnavailableError
        from sync_platform.sources import shared_state
        from sync_platform.sources.dealer_feed.client import DealerFeedClient
        from sync_platform.sources.http_session import RetrySettings
        from sync_platform.warehouse.connection import create_warehouse_engine

        shared_state.share_through(create_warehouse_engine({warehouse_url!r}))
        retry = RetrySettings(attempts=1, breaker_fail_max=2, breaker_reset_seconds=120)
        client = DealerFeedClient({simulator.url + "/dealer"!r}, "sim-dealer-key", retry=retry)
        try:
            next(client.pages("/api/v1/stock"))
        except SourceUnavailableError as exc:
            print(exc)
        """
    )
    assert "circuit breaker is open" in said
    assert sum(simulator.served("/dealer").values()) == served  # refused without a request


def test_an_unbound_process_keeps_its_breakers_to_itself(simulator):
    simulator.faults(down=True)
    client = DealerFeedClient(f"{simulator.url}/dealer", "sim-dealer-key", retry=FAIL_FAST)
    for _ in range(2):
        with pytest.raises(SourceUnavailableError):
            next(client.pages("/api/v1/stock"))
    with pytest.raises(SourceUnavailableError, match="circuit breaker is open"):
        next(client.pages("/api/v1/stock"))
    reset_breakers()


def test_a_rate_limit_counts_the_calls_of_every_process(warehouse_url, bound):
    # The other process is started and bound first, and reads only once this one has spent
    # the window: its start-up (slow on a busy machine) cannot let the window pass first.
    script = f"""
        import sys, time
        from sync_platform.sources import shared_state
        from sync_platform.sources.seller_sheet.client import read_limiter
        from sync_platform.warehouse.connection import create_warehouse_engine

        shared_state.share_through(create_warehouse_engine({warehouse_url!r}))
        limiter = read_limiter("robot@example.iam", 3, 6.0)
        print("ready", flush=True)
        sys.stdin.readline()
        started = time.monotonic()
        limiter.try_acquire("read")
        print(time.monotonic() - started, flush=True)
        """
    other = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout.readline().strip() == "ready", other.stderr.read()[-2000:]
        limiter = read_limiter("robot@example.iam", 3, 6.0)
        for _ in range(3):
            limiter.try_acquire("read")
        other.stdin.write("go\n")
        other.stdin.flush()
        out, err = other.communicate(timeout=120)
    finally:
        other.kill()
    assert other.returncode == 0, err[-2000:]
    waited = float(out.strip())
    # The other process found the window full and waited for it to move on.
    assert waited >= 1.0, waited
