"""The dealer feed end to end: Dagster job → HTTP client → simulator → warehouse, on
SQLite and PostgreSQL, including the faults the issue names."""

from __future__ import annotations

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.platform_tables import sync_errors, sync_runs
from sync_platform_tests.dagster_runs import check_results, materializations, run_job


def warehouse_stock(url: str) -> dict[str, tuple]:
    engine = create_warehouse_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT stock_number, vin, price, status FROM dealer_stock "
                "WHERE _deleted_at IS NULL"
            )
        ).all()
    engine.dispose()
    return {row[0]: (row[1], float(row[2]), row[3]) for row in rows}


def source_stock(simulator) -> dict[str, tuple]:
    items, page = [], 1
    while True:
        body = httpx.get(
            f"{simulator.url}/dealer/api/v1/stock",
            params={"page": page, "page_size": 1000},
            headers={"X-Api-Key": "sim-dealer-key"},
        ).json()
        items += body["items"]
        if page >= body["total_pages"]:
            break
        page += 1
    return {i["StockNumber"]: (i["VIN"], float(i["Price"]), i["Status"].lower()) for i in items}


def test_dealer_sync_loads_both_entities_and_every_check_passes(source_env, warehouse_url):
    result = run_job()

    assert result.success
    found = materializations(result)
    assert found["dealer_stock"]["inserted"] == 200 and found["dealer_stock"]["quarantined"] == 0
    assert found["dealer_leads"]["inserted"] == 100
    assert found["dealer_stock"]["dagster/row_count"] == 200
    # What plots best comes first; counters zero by the entity's nature are left out.
    assert list(found["dealer_stock"])[:3] == ["rows_per_second", "seconds_total", "fetched"]
    assert not {"held", "released", "skipped"} & set(found["dealer_stock"])
    assert not [name for name in found["dealer_stock"] if name.startswith("errors_")]
    assert "trouble" not in found["dealer_stock"]  # nothing quarantined, no gaps
    # one plot for the required columns' null rates, not one per column
    assert found["dealer_stock"]["quality_worst_null_rate"] == 0
    assert not [n for n in found["dealer_stock"] if n.startswith("quality_null_rate")]
    assert found["dealer_stock"]["conflicts"] == 0  # it has a conflict_timestamp
    assert (
        found["dealer_stock"]["seconds_merge"] > 0 and found["dealer_stock"]["rows_per_second"] > 0
    )
    checks = check_results(result)
    for entity in ("dealer_stock", "dealer_leads"):
        for check in ("schema_valid", "quarantine_rate", "in_step_with_source"):
            assert checks[f"{entity}:{check}"], (entity, check)
    assert warehouse_stock(warehouse_url) == source_stock(source_env)


def test_rerun_is_idempotent_and_source_changes_arrive_exactly(source_env, warehouse_url):
    assert run_job().success
    again = materializations(run_job())
    assert (again["dealer_stock"]["inserted"], again["dealer_stock"]["updated"]) == (0, 0)
    assert (again["dealer_leads"]["inserted"], again["dealer_leads"]["updated"]) == (0, 0)

    changed = source_env.mutate_stock(change=5, add=2, remove=1)
    source_env.mutate_leads(change=3, add=4)
    delta = materializations(run_job())
    assert delta["dealer_stock"]["updated"] == len(
        set(changed["changed"]) - set(changed["removed"])
    )
    assert delta["dealer_stock"]["inserted"] == 2 and delta["dealer_stock"]["soft_deleted"] == 1
    assert (delta["dealer_leads"]["inserted"], delta["dealer_leads"]["updated"]) == (4, 3)
    assert warehouse_stock(warehouse_url) == source_stock(source_env)


def test_malformed_rows_are_quarantined_and_the_run_completes(source_env, warehouse_url):
    good = source_stock(source_env)
    source_env.put_stock(
        "STK000003",
        {
            "StockNumber": "STK000003",
            "VIN": "SHORT",
            "Make": "Ford",
            "Model": "Focus",
            "Year": 2019,
            "Price": 1000,
            "Status": "Available",
            "LastUpdated": "2026-01-01T00:00:00Z",
        },
    )
    source_env.put_stock(
        "STK000004",
        {
            "StockNumber": "STK000004",
            "VIN": "1HGCM82633A004352",
            "Make": "Ford",
            "Model": "Focus",
            "Year": 2019,
            "Price": "abc",
            "Status": "Available",
            "LastUpdated": "2026-01-01T00:00:00Z",
        },
    )
    result = run_job()

    assert result.success
    stock = materializations(result)["dealer_stock"]
    assert (stock["fetched"], stock["quarantined"], stock["inserted"]) == (200, 2, 198)
    assert "quarantined" in stock["notes"]
    # the asset's page previews the reasons, one row each, without a broken table
    trouble = stock["trouble"]
    assert trouble.startswith("**Quarantined, top reasons**")
    rows = [line for line in trouble.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| reason | records |"
    assert sorted(rows[1:]) == [
        "| price: 'abc' is not a valid decimal | 1 |",
        "| vin: str_length(17, 17) | 1 |",
        "| vin: str_matches('^[A-HJ-NPR-Z0-9]{17}$') | 1 |",
    ]
    assert check_results(result)["dealer_stock:schema_valid"]
    assert set(warehouse_stock(warehouse_url)) == set(good) - {"STK000003", "STK000004"}


def test_truncated_json_429_and_5xx_are_retried_to_the_clean_result(source_env, warehouse_url):
    source_env.faults(truncate_next=2, rate_limit_next=2, retry_after=1, fail_next=2)
    result = run_job(retry_attempts=8)  # one request may meet all six faults

    assert result.success
    assert warehouse_stock(warehouse_url) == source_stock(source_env)
    served = {(row["path"], row["status"]) for row in source_env.stats()["requests"]}
    assert any(status == 429 for _, status in served) and any(status == 503 for _, status in served)
    clean_again = materializations(run_job())["dealer_stock"]
    assert (clean_again["inserted"], clean_again["updated"], clean_again["soft_deleted"]) == (
        0,
        0,
        0,
    )


def test_source_down_fails_the_run_with_a_message_naming_the_source(source_env, warehouse_url):
    source_env.faults(down=True)
    result = run_job()

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "dealer_feed" in failure and "check that dealer_feed is up" in failure
    engine = create_warehouse_engine(warehouse_url)
    with engine.connect() as connection:
        statuses = {r.entity: r.status for r in connection.execute(sa.select(sync_runs)).all()}
        categories = {r.category for r in connection.execute(sa.select(sync_errors)).all()}
    engine.dispose()
    assert "failed" in statuses.values() and categories == {"network"}
    assert warehouse_stock(warehouse_url) == {}


def test_breaker_opens_and_later_calls_fail_fast_without_reaching_the_source(source_env):
    from sync_platform.errors import SourceUnavailableError
    from sync_platform.sources.dealer_feed.client import DealerFeedClient
    from sync_platform.sources.http_session import RetrySettings

    source_env.faults(down=True)
    settings = RetrySettings(attempts=6, wait_initial=0.01, wait_jitter=0.0, breaker_fail_max=3)
    client = DealerFeedClient(f"{source_env.url}/dealer", "sim-dealer-key", retry=settings)
    with pytest.raises(SourceUnavailableError, match="circuit breaker is open"):
        list(client.pages("/api/v1/stock"))
    served = sum(row["count"] for row in source_env.stats()["requests"] if row["status"] == 503)
    assert served == 3  # the breaker opened at the third failure; no fourth request was sent
    with pytest.raises(SourceUnavailableError, match="circuit breaker is open"):
        list(client.pages("/api/v1/stock"))
    assert sum(row["count"] for row in source_env.stats()["requests"] if row["status"] == 503) == 3
    client.close()


def test_a_missing_environment_variable_fails_the_run_naming_it(source_env, monkeypatch):
    monkeypatch.delenv("DEALER_FEED_API_KEY")
    with pytest.raises(
        dg.DagsterInvalidConfigError, match='"DEALER_FEED_API_KEY" which is not set'
    ):
        run_job()


def test_a_rejected_api_key_fails_at_once_naming_the_setting(source_env, monkeypatch):
    monkeypatch.setenv("DEALER_FEED_API_KEY", "wrong")
    result = run_job()
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "refused the API key (401)" in failure and "DEALER_FEED_API_KEY" in failure
    assert "wrong" not in failure  # the secret itself never appears


def test_allow_mass_delete_is_a_run_config_switch(source_env, warehouse_url):
    assert run_job().success
    source_env.mutate_stock(remove=120)
    refused = materializations(run_job())["dealer_stock"]
    assert refused["soft_deleted"] == 0 and "refused to soft-delete 120" in refused["notes"]
    forced = run_job(run_config={"ops": {"dealer_stock": {"config": {"allow_mass_delete": True}}}})
    assert materializations(forced)["dealer_stock"]["soft_deleted"] == 120
    assert len(warehouse_stock(warehouse_url)) == 80


def test_a_run_while_another_sync_of_the_entity_holds_it_is_refused(source_env, warehouse_url):
    import os
    import socket
    from datetime import UTC, datetime

    from sync_platform.warehouse.platform_tables import sync_leases

    engine = create_warehouse_engine(warehouse_url)
    with engine.begin() as connection:  # another live process on this host is syncing
        now = datetime.now(UTC)
        connection.execute(
            sa.insert(sync_leases).values(
                source="dealer_feed",
                entity="dealer_stock",
                holder="dagster run 1234abcd",
                host=socket.gethostname(),
                pid=os.getppid(),
                acquired_at=now,
                heartbeat_at=now,
            )
        )
    engine.dispose()
    result = run_job()
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "dealer_feed.dealer_stock is already syncing: held by dagster run 1234abcd" in failure
    assert warehouse_stock(warehouse_url) == {}
