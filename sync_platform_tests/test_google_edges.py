"""Google access tokens and connections as Google's documents describe them, through Dagster
runs of GA4 and the seller sheet against the simulator (real service-account token flow),
on SQLite and PostgreSQL: a token revoked before it expires is answered once with a new
token, a grant Google refuses is asked for once, not by every step, a stalled request is
retried after the read timeout the environment sets, and a run may change one setting."""

from __future__ import annotations

import time

import dagster as dg
import pytest
import sqlalchemy as sa

from sync_platform.definitions import build_definitions
from sync_platform.defs.ga4.resources import GA4Resource
from sync_platform.errors import ConfigurationError
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform_tests.dagster_runs import materializations, run_job

DAY = "2026-11-20"
RUN_REPORT = "/ga4/v1beta/properties/123456789:runReport"


def count(url: str, sql: str) -> int:
    with WarehouseResource(url=url).get_engine().connect() as connection:
        return connection.execute(sa.text(sql)).scalar_one()


def tokens(simulator) -> dict[str, int]:
    return simulator.google("GET", "/tokens")


def test_a_token_revoked_mid_report_is_replaced_once_and_the_day_loads_whole(
    source_env, warehouse_url
):
    source_env.ga4("POST", "/today", {"date": "2026-11-24"})
    # revoked after the first page: the second page's request meets a 401
    source_env.google("POST", "/revoke_all", {"after_requests": 1})
    result = run_job("ga4_daily", partition_key=DAY, ga4_page_size=5)
    assert result.success
    traffic = materializations(result)["ga4_daily_traffic"]
    assert traffic["ga4_pages"] > 2 and traffic["fetched"] == traffic["ga4_row_count"]
    assert count(warehouse_url, "SELECT count(*) FROM ga4_daily_traffic") == traffic["fetched"]
    served = source_env.served("/ga4")
    assert served[(RUN_REPORT, 401)] == 1  # one refusal, answered with one new token
    reports = sum(1 for key in materializations(result) if key.startswith("ga4_"))
    assert tokens(source_env) == {"issued": reports + 1, "refused": 0}


def test_a_sheet_read_with_a_revoked_token_is_retried_with_a_new_one(source_env, warehouse_url):
    source_env.google("POST", "/revoke_all", {"after_requests": 1})
    result = run_job("seller_sheet_sync")
    assert result.success
    sheet = source_env.sheets("GET", "/rows")["rows"]
    sellers = {row[0] for row in sheet[1:] if row and row[0]}
    active = count(warehouse_url, "SELECT count(*) FROM sheet_sellers WHERE _deleted_at IS NULL")
    assert active == len(sellers)
    assert sum(n for (_, status), n in source_env.served("/sheets").items() if status == 401) == 1


def test_a_refused_grant_is_asked_for_once_per_run_and_no_data_is_requested(
    source_env, warehouse_url
):
    source_env.ga4("POST", "/today", {"date": "2026-11-24"})
    source_env.google("POST", "/account", {"deleted": True})
    result = run_job("ga4_daily", partition_key=DAY)
    assert not result.success
    failures = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert len(failures) >= 4  # every report step fails …
    assert "Invalid grant: account not found" in failures[0]
    assert all("Google refused a token" in message for message in failures)
    assert tokens(source_env) == {"issued": 0, "refused": 1}  # … after one grant was asked
    assert not source_env.served("/ga4")  # and not one data request went out


def production_run(partition_key: str, run_config=None) -> dg.ExecuteInProcessResult:
    """`ga4_daily` from the definitions the daemon loads (resources from the environment)."""
    job = build_definitions().resolve_job_def("ga4_daily")
    return job.execute_in_process(
        run_config=run_config,
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=partition_key,
        raise_on_error=False,
    )


def test_a_stalled_request_is_retried_after_the_configured_read_timeout(
    source_env, warehouse_url, monkeypatch
):
    monkeypatch.setenv("GA4_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("GA4_PAGE_SIZE", "5")
    source_env.ga4("POST", "/today", {"date": "2026-11-24"})
    source_env.faults(hang_next=1, hang_seconds=6, paths=["/ga4/"])
    started = time.monotonic()
    result = production_run(DAY)
    assert result.success
    assert time.monotonic() - started < 60
    served = source_env.served("/ga4")
    assert served[(RUN_REPORT, 499)] == 1  # the client hung up after 1 s and asked again
    traffic = materializations(result)["ga4_daily_traffic"]
    assert traffic["ga4_pages"] == -(-traffic["ga4_row_count"] // 5)  # GA4_PAGE_SIZE applied
    assert count(warehouse_url, "SELECT count(*) FROM ga4_daily_traffic") == traffic["fetched"]


def test_run_config_changes_one_setting_and_keeps_the_others(source_env, monkeypatch):
    monkeypatch.setenv("GA4_PAGE_SIZE", "5")
    source_env.ga4("POST", "/today", {"date": "2026-11-24"})
    settings = {"source_settings": {"page_size": 3}}
    result = production_run(DAY, {"ops": {"ga4_daily_traffic": {"config": settings}}})
    assert result.success
    found = materializations(result)
    assert found["ga4_daily_traffic"]["ga4_pages"] == -(-found["ga4_daily_traffic"]["fetched"] // 3)
    assert found["ga4_events"]["ga4_pages"] == -(-found["ga4_events"]["fetched"] // 5)
    bad = production_run(
        DAY, {"ops": {"ga4_daily_traffic": {"config": {"source_settings": {"page_sise": 3}}}}}
    )
    (failure,) = bad.get_step_failure_events()
    assert "page_sise" in failure.step_failure_data.error.message
    assert "page_size" in failure.step_failure_data.error.message  # what it does have


def test_a_bad_setting_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("GA4_TIMEOUT_SECONDS", "soon")
    with pytest.raises(ConfigurationError, match="GA4_TIMEOUT_SECONDS = 'soon' is not valid"):
        GA4Resource.tuning_from_env()
    monkeypatch.setenv("GA4_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ConfigurationError, match="GA4_TIMEOUT_SECONDS"):
        GA4Resource.tuning_from_env()


def test_a_failing_token_endpoint_is_an_outage_not_a_refusal(source_env, warehouse_url):
    """Google's token endpoint answering 503 is retried by the next run at once: only a
    grant Google refuses is remembered."""
    source_env.faults(down=True, paths=["/google/"])
    failed = run_job("seller_sheet_sync")
    assert not failed.success
    messages = [e.step_failure_data.error.message for e in failed.get_step_failure_events()]
    assert all("token endpoint failed" in m for m in messages)
    source_env.faults()
    assert run_job("seller_sheet_sync").success


def test_a_stalled_sheet_read_is_retried_after_the_configured_read_timeout(
    source_env, warehouse_url, monkeypatch
):
    monkeypatch.setenv("SELLER_SHEET_TIMEOUT_SECONDS", "1")
    source_env.faults(hang_next=1, hang_seconds=6, paths=["/sheets/"])
    result = (
        build_definitions()
        .resolve_job_def("seller_sheet_sync")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    )
    assert result.success
    stalled = [n for (_, status), n in source_env.served("/sheets").items() if status == 499]
    assert stalled == [1]  # the client hung up after 1 s and read again
    sheet = source_env.sheets("GET", "/rows")["rows"]
    sellers = {row[0] for row in sheet[1:] if row and row[0]}
    active = count(warehouse_url, "SELECT count(*) FROM sheet_sellers WHERE _deleted_at IS NULL")
    assert active == len(sellers)
