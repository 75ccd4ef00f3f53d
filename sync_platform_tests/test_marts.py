"""The marts: their content from known warehouse rows, and their automation firing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from sync_platform.config import cached_source_config
from sync_platform.definitions import build_definitions
from sync_platform.defs.marts.assets import mart_daily_kpis_asset
from sync_platform.engine.pipeline import run_entity_sync
from sync_platform.engine.ports import EntitySource, SyncRequest
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform_tests.dagster_runs import partition_range
from sync_platform_tests.records import LEADS, lead

GA4 = cached_source_config("ga4")
TOTALS = GA4.entities["ga4_daily_totals"]
TRAFFIC = GA4.entities["ga4_daily_traffic"]
DAYS = (date(2026, 11, 20), date(2026, 11, 21))

# Whole-property figures per day (users are not the sum of the traffic rows' users).
TOTALS_ROWS = {
    date(2026, 11, 20): {"sessions": "100", "totalUsers": "70", "newUsers": "30",
                         "engagementRate": "0.5", "keyEvents": "4"},
    date(2026, 11, 21): {"sessions": "50", "totalUsers": "45", "newUsers": "20",
                         "engagementRate": "0.25", "keyEvents": "0"},
}  # fmt: skip
# (source, medium, device, sessions, users): 60 organic + 25 paid (cpc) + 15 referral = 100.
TRAFFIC_ROWS = {
    date(2026, 11, 20): [
        ("google", "organic", "desktop", 40, 35),
        ("bing", "organic", "mobile", 20, 20),
        ("google", "cpc", "mobile", 25, 25),
        ("news.example", "referral", "desktop", 15, 15),
    ],
    date(2026, 11, 21): [("google", "organic", "desktop", 50, 45)],
}


def _sync(engine: sa.Engine, source: str, entity, records, scope=None) -> None:
    request = SyncRequest(source, entity, scope=scope)
    run_entity_sync(engine, request, EntitySource(pages=lambda _since: [records]))


def _load_known_rows(engine: sa.Engine) -> None:
    for day, figures in TOTALS_ROWS.items():
        _sync(engine, "ga4", TOTALS, [{"date": f"{day:%Y%m%d}", **figures}], {"date": day})
    for day, rows in TRAFFIC_ROWS.items():
        records = [
            {"date": f"{day:%Y%m%d}", "sessionSource": source, "sessionMedium": medium,
             "deviceCategory": device, "sessions": str(sessions), "totalUsers": str(users)}
            for source, medium, device, sessions, users in rows
        ]  # fmt: skip
        _sync(engine, "ga4", TRAFFIC, records, {"date": day})
    leads = [
        lead(1, CreatedAt="2026-11-20T09:00:00Z"),
        lead(2, CreatedAt="2026-11-20T23:59:00Z"),
        lead(3, CreatedAt="2026-11-21T00:00:00Z"),
        lead(4, CreatedAt="2026-11-22T10:00:00Z"),  # outside the range: not counted
    ]
    _sync(engine, "dealer_feed", LEADS, leads)


def test_the_daily_kpis_mart_takes_totals_whole_and_sums_only_additive_figures(
    engine, warehouse_url
):
    _load_known_rows(engine)
    result = dg.materialize(
        [mart_daily_kpis_asset],
        tags=partition_range("2026-11-20", "2026-11-21"),
        resources={"warehouse": WarehouseResource(url=warehouse_url)},
    )
    assert result.success
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT date, sessions, total_users, new_users, engagement_rate, key_events, "
                "organic_sessions, paid_sessions, leads_created, leads_per_1000_sessions "
                "FROM mart_daily_kpis ORDER BY date"
            )
        ).all()
    assert [tuple(row[1:]) for row in rows] == [
        # users from the totals (70), not the traffic rows' sum (95)
        (100, 70, 30, pytest.approx(0.5), 4, 60, 25, 2, pytest.approx(20.0)),
        (50, 45, 20, pytest.approx(0.25), 0, 50, 0, 1, pytest.approx(20.0)),
    ]
    assert [str(row[0]) for row in rows] == ["2026-11-20", "2026-11-21"]
    metadata = result.asset_materializations_for_node("mart_daily_kpis")[0].metadata
    assert metadata["sessions"].value == 150 and metadata["leads_created"].value == 3


def test_a_rerun_of_a_range_replaces_its_rows(engine, warehouse_url):
    _load_known_rows(engine)
    resources = {"warehouse": WarehouseResource(url=warehouse_url)}
    day = "2026-11-20"
    dg.materialize([mart_daily_kpis_asset], partition_key=day, resources=resources)
    revised = {**TOTALS_ROWS[DAYS[0]], "sessions": "120"}  # GA4 revised the day
    _sync(engine, "ga4", TOTALS, [{"date": "20261120", **revised}], {"date": DAYS[0]})
    dg.materialize([mart_daily_kpis_asset], partition_key=day, resources=resources)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT date, sessions FROM mart_daily_kpis")).all()
    assert [(str(day), sessions) for day, sessions in rows] == [("2026-11-20", 120)]


def test_the_automation_sensor_runs_and_covers_the_mart():
    repository = build_definitions().get_repository_def()
    sensor = repository.get_sensor_def("automation_condition_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    targeted = sensor.asset_selection.resolve(repository.asset_graph)
    assert dg.AssetKey("mart_daily_kpis") in targeted


def test_the_mart_refreshes_once_its_inputs_have_new_data():
    defs = build_definitions()
    instance = dg.DagsterInstance.ephemeral()
    mart = dg.AssetSelection.assets("mart_daily_kpis")
    now = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)  # the latest partition is 2026-11-20
    quiet = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, asset_selection=mart, evaluation_time=now
    )
    assert quiet.total_requested == 0  # nothing new upstream
    for key in ("ga4_daily_totals", "ga4_daily_traffic"):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=key, partition="2026-11-20")
        )
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="dealer_leads"))
    half = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, asset_selection=mart, evaluation_time=now, cursor=quiet.cursor
    )
    assert half.total_requested == 0  # their blocking schema checks have not passed yet
    for key in ("ga4_daily_totals", "ga4_daily_traffic", "dealer_leads"):
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(key), check_name="schema_valid", passed=True
            )
        )
    fired = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, asset_selection=mart, evaluation_time=now, cursor=half.cursor
    )
    assert fired.get_requested_partitions(dg.AssetKey("mart_daily_kpis")) == {"2026-11-20"}
