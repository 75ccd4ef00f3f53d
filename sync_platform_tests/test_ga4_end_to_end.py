"""GA4 through Dagster: daily partitions, ranges, revisions, backfills, quota, completeness
and the KPI mart, against the simulated Data API, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa

from sync_platform.defs.ga4.assets import GA4_PARTITIONS
from sync_platform.defs.ga4.schedules import ga4_daily_with_lookback
from sync_platform.defs.ga4.sensors import ga4_missing_partitions_sensor, missing_block_request
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.sources.http_session import reset_breakers
from sync_platform_tests.dagster_runs import (
    check_results,
    materializations,
    partition_range,
    run_job,
)

TODAY = date(2026, 11, 24)
REPORTS = ("ga4_daily_traffic", "ga4_landing_pages", "ga4_events", "ga4_daily_totals")


def query(url: str, sql: str, **params) -> list:
    with WarehouseResource(url=url).get_engine().connect() as connection:
        return connection.execute(sa.text(sql), params).all()


def set_today(simulator, day: date = TODAY) -> None:
    simulator.ga4("POST", "/today", {"date": day.isoformat()})


def test_one_day_loads_every_report_and_the_mart(source_env, warehouse_url):
    set_today(source_env)
    result = run_job("ga4_daily", partition_key="2026-11-20")
    assert result.success
    found = materializations(result)
    for report in REPORTS:
        assert (
            found[report]["inserted"] > 0
            and found[report]["ga4_row_count"] == found[report]["fetched"]
        )
        assert found[report]["ga4_data_loss_from_other_row"] is False
    checks = check_results(result)
    assert all(checks[f"{r}:schema_valid"] for r in REPORTS)
    ((day, sessions),) = query(warehouse_url, "SELECT date, sessions FROM mart_daily_kpis")
    ((totals,),) = query(warehouse_url, "SELECT sessions FROM ga4_daily_totals")
    assert str(day) == "2026-11-20" and sessions == totals


def test_a_re_pull_replaces_revised_figures_and_keeps_the_row_count(source_env, warehouse_url):
    set_today(source_env)
    recent = (TODAY - timedelta(days=1)).isoformat()
    run_job("ga4_daily", partition_key=recent)
    rows = (
        "SELECT session_source || '/' || session_medium || '/' || device_category, sessions "
        "FROM ga4_daily_traffic"
    )
    before = dict(query(warehouse_url, rows))
    again = materializations(run_job("ga4_daily", partition_key=recent))["ga4_daily_traffic"]
    after = dict(query(warehouse_url, rows))
    assert set(after) == set(before)  # same rows, never duplicated
    assert again["updated"] > 0 and again["inserted"] == 0
    assert sum(after.values()) > sum(before.values())  # GA4 revised the recent day upwards


def test_a_90_day_backfill_is_one_run_with_90_materialized_partitions(source_env, warehouse_url):
    set_today(source_env)
    instance = dg.DagsterInstance.ephemeral()
    first, last = TODAY - timedelta(days=90), TODAY - timedelta(days=1)
    result = run_job(
        "ga4_daily", instance=instance, tags=partition_range(first.isoformat(), last.isoformat())
    )
    assert result.success
    for report in ("ga4_daily_traffic", "mart_daily_kpis"):
        assert len(instance.get_materialized_partitions(dg.AssetKey(report))) == 90
    ((days,),) = query(warehouse_url, "SELECT count(DISTINCT date) FROM ga4_daily_traffic")
    assert days == 90


def test_a_malformed_page_fails_the_partition_and_writes_nothing(source_env, warehouse_url):
    set_today(source_env)
    source_env.ga4("POST", "/corrupt", {"mode": "non_numeric_metric", "times": 1})
    result = run_job("ga4_daily", partition_key="2026-11-10")
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "2026-11-10" in message and "not numeric" in message and "nothing" in message
    ((rows,),) = query(warehouse_url, f"SELECT count(*) FROM {failure.step_key}")
    assert rows == 0  # the corrupted report wrote nothing; the others loaded
    ((traffic_or_other,),) = query(warehouse_url, "SELECT count(*) FROM ga4_events")
    assert traffic_or_other > 0 or failure.step_key == "ga4_events"


def test_quota_running_low_mid_pagination_stops_cleanly_with_nothing_written(
    source_env, warehouse_url
):
    set_today(source_env)
    source_env.ga4("POST", "/quota", {"tokens_per_hour": 52})  # the floor is 50
    result = run_job("ga4_daily", partition_key="2026-11-10", ga4_page_size=20)
    assert not result.success
    failures = " ".join(e.step_failure_data.error.message for e in result.get_step_failure_events())
    assert "tokens" in failures.lower() and "quota" in failures.lower()
    ((rows,),) = query(warehouse_url, "SELECT count(*) FROM ga4_daily_traffic")
    assert rows == 0


def test_the_mart_never_sums_non_additive_metrics(source_env, warehouse_url):
    set_today(source_env)
    run_job("ga4_daily", tags=partition_range("2026-11-15", "2026-11-17"))
    mart = dict(query(warehouse_url, "SELECT date, total_users FROM mart_daily_kpis"))
    totals = dict(query(warehouse_url, "SELECT date, total_users FROM ga4_daily_totals"))
    summed = dict(
        query(warehouse_url, "SELECT date, sum(total_users) FROM ga4_daily_traffic GROUP BY date")
    )
    assert mart == totals
    assert all(summed[day] != totals[day] for day in totals)  # summing would be wrong here
    organic = dict(
        query(
            warehouse_url,
            (
                "SELECT date, sum(sessions) FROM ga4_daily_traffic "
                "WHERE session_medium = 'organic' GROUP BY date"
            ),
        )
    )
    mart_organic = dict(query(warehouse_url, "SELECT date, organic_sessions FROM mart_daily_kpis"))
    assert mart_organic == organic  # sessions are additive and may be summed


def test_the_nightly_schedule_asks_for_yesterday_and_the_lookback(warehouse_url, monkeypatch):
    monkeypatch.setenv("GA4_PROPERTY_ID", "123")
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT_JSON", "{}")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 24, 2, 0, tzinfo=UTC),
        resources={"warehouse": WarehouseResource(url=warehouse_url)},
    )
    request = ga4_daily_with_lookback(context)
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-20"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-23"
    monkeypatch.delenv("GA4_PROPERTY_ID")
    skip = ga4_daily_with_lookback(context)  # no property configured: skip, saying what to set
    assert isinstance(skip, dg.SkipReason) and "GA4_PROPERTY_ID" in skip.skip_message


def test_missing_days_are_found_from_the_data_and_requested(source_env, warehouse_url):
    set_today(source_env)
    instance = dg.DagsterInstance.ephemeral()
    synced = [day for day in GA4_PARTITIONS.get_partition_keys() if day < "2026-11-21"]
    for report in REPORTS:  # what earlier runs recorded, without re-running them
        for day in synced:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=report, partition=day)
            )
    run_job("ga4_daily", instance=instance, partition_key="2026-11-23")
    request = ga4_missing_partitions_sensor(dg.build_sensor_context(instance=instance))
    # One run of ga4_daily (every report and the marts built on them), for the first block.
    assert isinstance(request, dg.RunRequest) and request.asset_selection is None
    assert ga4_missing_partitions_sensor.job_name == "ga4_daily"
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-21"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-22"


def _all_synced_until(instance: dg.DagsterInstance, last: str) -> None:
    for report in REPORTS:
        for day in GA4_PARTITIONS.get_partition_keys():
            if day <= last:
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(asset_key=report, partition=day)
                )


def test_yesterday_is_not_missing_until_the_nightly_run_has_had_its_chance():
    instance = dg.DagsterInstance.ephemeral()
    _all_synced_until(instance, "2026-11-22")
    at_one = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # before the 02:00 run
    assert isinstance(missing_block_request(instance, at_one), dg.SkipReason)
    at_three = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # the 02:00 run may still be going
    assert isinstance(missing_block_request(instance, at_three), dg.SkipReason)
    at_five = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    request = missing_block_request(instance, at_five)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-23"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-23"


def test_a_missing_block_is_asked_for_once_at_a_time_and_a_bounded_number_of_times():
    instance = dg.DagsterInstance.ephemeral()
    _all_synced_until(instance, "2026-11-20")
    now = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    first = missing_block_request(instance, now)
    later = missing_block_request(instance, now + timedelta(hours=5))
    assert first.run_key == later.run_key  # the key does not change with the clock

    def launched(status: dg.DagsterRunStatus) -> None:
        tags = {**first.tags, "dagster/sensor_name": "ga4_missing_partitions_sensor"}
        run = dg.DagsterRun(job_name="ga4_daily", run_id=str(uuid.uuid4()), tags=tags)
        instance.add_run(run._replace(status=status))

    launched(dg.DagsterRunStatus.STARTED)
    assert "not finished" in missing_block_request(instance, now).skip_message
    (started,) = instance.get_runs(limit=1)
    instance.report_run_failed(started)
    retry = missing_block_request(instance, now)
    assert retry.run_key != first.run_key and retry.run_key.endswith("run-2")
    launched(dg.DagsterRunStatus.FAILURE)
    launched(dg.DagsterRunStatus.FAILURE)
    assert "still missing after 3 runs" in missing_block_request(instance, now).skip_message


def test_pages_shorter_than_asked_are_followed_to_the_row_count(source_env, warehouse_url):
    """GA4 serves at most 250,000 rows a response whatever `limit` asks: here 7 while the
    client asks 20, so every page is short until the last, and the day still loads whole."""
    source_env.ga4("POST", "/reset", {"max_rows_per_response": 7})
    set_today(source_env)
    result = run_job("ga4_daily", partition_key="2026-11-20", ga4_page_size=20)
    assert result.success
    traffic = materializations(result)["ga4_daily_traffic"]
    assert traffic["ga4_row_count"] == traffic["fetched"] == traffic["inserted"] > 7
    assert traffic["ga4_pages"] == -(-traffic["ga4_row_count"] // 7)
    ((rows,),) = query(warehouse_url, "SELECT count(*) FROM ga4_daily_traffic")
    expected = source_env.http.post(
        "/_sim/ga4/properties/123456789:peekReport",
        json={
            "dateRanges": [{"startDate": "2026-11-20", "endDate": "2026-11-20"}],
            "dimensions": [{"name": n} for n in ("date", "sessionSource", "sessionMedium",
                                                 "deviceCategory")],
            "metrics": [{"name": "sessions"}],
        },
    ).json()["rowCount"]  # fmt: skip
    assert rows == expected


def test_sampling_is_kept_as_the_share_of_events_read(source_env):
    """samplesReadCount / samplingSpaceSize (int64, sent as JSON strings) for a sampled
    property; 1.0 for one that is not."""
    source_env.ga4("POST", "/reset", {"properties": [{"id": "123456789", "sampled": True}]})
    set_today(source_env)
    body = {
        "dateRanges": [{"startDate": "2026-11-20", "endDate": "2026-11-20"}],
        "dimensions": [{"name": "date"}, {"name": "sessionSource"}, {"name": "sessionMedium"},
                       {"name": "deviceCategory"}],
        "metrics": [{"name": m} for m in ("sessions", "totalUsers", "newUsers",
                                          "screenPageViews", "engagementRate", "keyEvents")],
    }  # fmt: skip
    served = source_env.http.post("/_sim/ga4/properties/123456789:peekReport", json=body).json()
    (sampling,) = served["metadata"]["samplingMetadatas"]
    assert isinstance(sampling["samplesReadCount"], str)  # int64 as proto3 JSON writes it
    traffic = materializations(run_job("ga4_daily", partition_key="2026-11-20"))[
        "ga4_daily_traffic"
    ]
    assert traffic["ga4_sampled"] is True
    expected = int(sampling["samplesReadCount"]) / int(sampling["samplingSpaceSize"])
    assert traffic["ga4_sampling_ratio"] == pytest.approx(expected) and expected < 1
    source_env.ga4("POST", "/reset", {})
    set_today(source_env)
    unsampled = materializations(run_job("ga4_daily", partition_key="2026-11-21"))
    assert unsampled["ga4_daily_traffic"]["ga4_sampling_ratio"] == 1.0


def _served_reports(simulator) -> dict[int, int]:
    return {
        status: n
        for (path, status), n in simulator.served("/ga4").items()
        if path.endswith(":runReport")
    }


def test_the_quota_floor_holds_across_the_reports_of_a_job_and_across_runs(
    source_env, warehouse_url
):
    """One request costs a token here: 51 left and a floor of 50 let two reports read
    (51 → 50 → 49); the other two stop before their first request, and so does a new run."""
    set_today(source_env)
    source_env.ga4("POST", "/quota", {"tokens_per_hour": 51})
    result = run_job("ga4_daily", partition_key="2026-11-10")
    assert not result.success
    assert _served_reports(source_env) == {200: 2}
    stopped = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert len(stopped) == 2
    assert all("stopped before the next request: only 49 hourly tokens left" in m for m in stopped)
    loaded = [r for r in REPORTS if query(warehouse_url, f"SELECT 1 FROM {r} LIMIT 1")]
    assert len(loaded) == 2  # the stopped reports wrote nothing
    again = run_job("ga4_daily", partition_key="2026-11-11")
    assert not again.success and len(again.get_step_failure_events()) == 4
    assert _served_reports(source_env) == {200: 2}  # the next run asked nothing either


def test_a_spent_daily_quota_is_not_retried_and_says_when_it_refills(source_env, warehouse_url):
    set_today(source_env)
    source_env.ga4("POST", "/quota", {"tokens_per_day": 0})
    result = run_job("ga4_daily", partition_key="2026-11-10")
    assert not result.success
    assert _served_reports(source_env) == {429: 1}  # one refusal, then no report asks again
    messages = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert len(messages) == 4
    assert any("Exhausted property tokens per day" in m for m in messages)
    assert all("daily quota refills at midnight Pacific time" in m for m in messages)
    assert not any("up and reachable" in m for m in messages)
    assert all(not query(warehouse_url, f"SELECT 1 FROM {r} LIMIT 1") for r in REPORTS)


def test_a_dead_api_gets_a_handful_of_requests_per_run_whatever_the_reports(
    source_env, warehouse_url
):
    """GA4 answering 503 to everything: the breaker every step shares opens after 5 failed
    requests (GA4 allows about 10 server errors an hour), and the rest of the job asks
    nothing."""
    set_today(source_env)
    source_env.faults(down=True, paths=["/ga4/"])
    result = run_job("ga4_daily", partition_key="2026-11-10")
    assert not result.success
    assert _served_reports(source_env) == {503: 5}
    messages = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert len(messages) == 4 and sum("circuit breaker is open" in m for m in messages) >= 2
    # an alert at the first such run, not after three failed ones
    open_alert = (
        "SELECT message FROM sync_alerts WHERE dedup_key = 'source_down:ga4' AND status = 'open'"
    )
    ((message,),) = query(warehouse_url, open_alert)
    assert message.startswith("ga4 is down: ga4: circuit breaker is open after 5 consecutive")
    # GA4 answers again (and the breaker's wait is over): the next sync closes the alert
    source_env.faults()
    reset_breakers()
    assert run_job("ga4_daily", partition_key="2026-11-10").success
    assert query(warehouse_url, open_alert) == []


def test_a_day_that_comes_back_empty_keeps_its_rows_and_raises_an_alert(source_env, warehouse_url):
    set_today(source_env)
    day = "2026-11-20"
    assert run_job("ga4_daily", partition_key=day).success
    ((held,),) = query(warehouse_url, "SELECT count(*) FROM ga4_daily_traffic")
    dark = {"properties": [{"id": "123456789", "days_without_data": [day]}]}
    source_env.ga4("POST", "/reset", dark)  # the tag was removed: GA4 now has nothing
    set_today(source_env)
    result = run_job("ga4_daily", partition_key=day)
    assert materializations(result)["ga4_daily_traffic"]["fetched"] == 0
    active = "SELECT count(*) FROM ga4_daily_traffic WHERE _deleted_at IS NULL"
    assert query(warehouse_url, active) == [(held,)]  # the guard kept them
    alerts = dict(
        query(
            warehouse_url,
            "SELECT dedup_key, message FROM sync_alerts WHERE status = 'open' "
            "AND type = 'empty_read'",
        )
    )
    message = alerts[f"empty_read:ga4:ga4_daily_traffic:date {day}"]
    assert f"GA4 property 123456789: ga4_daily_traffic returned no rows for date {day}" in message
    assert f"where the warehouse holds {held}" in message and "nothing was deleted" in message
    assert len(alerts) == 4  # each report of the day
    # the tag is back: the day reads again and the alert closes
    source_env.ga4("POST", "/reset", {})
    set_today(source_env)
    assert run_job("ga4_daily", partition_key=day).success
    still_open = "SELECT count(*) FROM sync_alerts WHERE status = 'open' AND type = 'empty_read'"
    assert query(warehouse_url, still_open) == [(0,)]


def test_seconds_and_currency_metrics_load_as_the_property_reports_them(source_env, warehouse_url):
    """TYPE_SECONDS (averageSessionDuration) and TYPE_CURRENCY (totalRevenue, in the
    property's currency) in the daily totals, equal to what the Data API serves."""
    set_today(source_env)
    result = run_job("ga4_daily", partition_key="2026-11-20")
    totals = materializations(result)["ga4_daily_totals"]
    assert totals["ga4_currency_code"] == "AUD"
    served = source_env.http.post(
        "/_sim/ga4/properties/123456789:peekReport",
        json={
            "dateRanges": [{"startDate": "2026-11-20", "endDate": "2026-11-20"}],
            "dimensions": [{"name": "date"}],
            "metrics": [{"name": "averageSessionDuration"}, {"name": "totalRevenue"}],
        },
    ).json()
    assert [h["type"] for h in served["metricHeaders"]] == ["TYPE_SECONDS", "TYPE_CURRENCY"]
    seconds, revenue = (v["value"] for v in served["rows"][0]["metricValues"])
    ((stored_seconds, stored_revenue),) = query(
        warehouse_url,
        "SELECT average_session_duration_seconds, total_revenue FROM ga4_daily_totals",
    )
    assert stored_seconds == pytest.approx(float(seconds))
    assert Decimal(str(stored_revenue)) == Decimal(revenue) and Decimal(revenue) > 0
