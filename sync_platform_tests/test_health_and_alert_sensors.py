"""The health report (CLI and asset) and the Dagster sensors that raise alerts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from sync_platform.alerting.health import health_report
from sync_platform.config import all_source_configs, cached_source_config
from sync_platform.definitions import build_definitions
from sync_platform.defs.ops.alerting import alert_rules_sensor, check_failure_alert_sensor
from sync_platform.defs.platform.sensors import record_run_failures
from sync_platform.engine import audit
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.warehouse.platform_tables import sync_alerts
from sync_platform_tests.dagster_runs import (
    execute_as_operator,
    fast_resources,
    latest_materialization,
    run_job,
)

CLI = str(Path(sys.executable).parent / "sync-platform")


def open_alerts(url: str) -> dict[str, dict]:
    with WarehouseResource(url=url).get_engine().connect() as connection:
        rows = connection.execute(
            sa.select(sync_alerts).where(sync_alerts.c.status == "open")
        ).mappings()
        return {row["dedup_key"]: dict(row) for row in rows}


def record_success_for_every_entity(url: str) -> None:
    engine = WarehouseResource(url=url).get_engine()
    for source in all_source_configs():
        for entity in source.entities:
            run_id = audit.start_sync_run(
                engine,
                source=source.source,
                entity=entity,
                trigger="scheduled",
                dagster_run_id=None,
                partition_key=None,
            )
            with engine.begin() as connection:
                audit.update_sync_run(
                    connection, run_id, status="succeeded", finished_at=audit.utcnow()
                )


def health_cli(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, "health", *args],
        env={**os.environ, "SYNC_PLATFORM_WAREHOUSE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_health_cli_exit_codes_and_json_shape(warehouse_url):
    never = health_cli(warehouse_url, "--json")
    assert never.returncode == 1, never.stderr
    report = json.loads(never.stdout)
    assert set(report) >= {"healthy", "entities", "recent_alerts", "quality_issues", "generated_at"}
    assert report["healthy"] is False
    stock = next(e for e in report["entities"] if e["entity"] == "dealer_stock")
    assert set(stock) >= {
        "last_success_at",
        "next_run_at",
        "success_rate_24h",
        "success_rate_7d",
        "open_gaps",
        "quarantined_24h",
        "duration_trend_seconds",
        "problems",
    }
    assert stock["problems"] == ["no successful sync in the last 7 days"]
    assert stock["next_run_at"] is not None  # from dealer_sync_every_15_minutes

    record_success_for_every_entity(warehouse_url)
    healthy = health_cli(warehouse_url)
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.stdout.startswith("**Healthy**")


def test_health_report_counts_success_rates_gaps_and_quarantine(source_env, warehouse_url):
    source_env.faults(drop_keys=[{"key": "STK000042", "times": 1}])
    source_env.put_stock("STK000001", {"StockNumber": "STK000001", "VIN": "BAD"})
    assert run_job().success
    source_env.faults(down=True)
    run_job()
    with WarehouseResource(url=warehouse_url).get_engine().connect() as connection:
        report = health_report(connection, [cached_source_config("dealer_feed")], {})
    stock = next(e for e in report["entities"] if e["entity"] == "dealer_stock")
    assert stock["success_rate_24h"] == 0.5 and stock["last_status"] == "failed"
    assert stock["open_gaps"] == 1 and stock["quarantined_24h"] == 1
    assert not stock["healthy"] and "the latest sync failed" in stock["problems"]
    problems = {(i["entity"], i["problem"]) for i in report["quality_issues"]}
    assert ("dealer_feed.dealer_stock", "1 open gap(s)") in problems
    assert all(i["action"] for i in report["quality_issues"])


def test_sync_health_asset_reports_in_markdown_and_numbers(source_env, warehouse_url, tmp_path):
    run_job()
    # The report reads the schedules from the running code location, as under the daemon.
    instance = execute_as_operator("sync_health_report", tmp_path / "dagster_home")
    metadata = latest_materialization(instance, "sync_health")
    assert "| dealer_feed.dealer_stock | ✓ |" in metadata["report"]
    assert metadata["healthy_entities"] >= 2 and metadata["open_gaps"] == 0
    stock_row = next(
        line for line in metadata["report"].splitlines() if "dealer_feed.dealer_stock" in line
    )
    next_run = stock_row.split("|")[4].strip()
    assert next_run.startswith("20"), stock_row  # dealer_sync_every_15_minutes was found


def test_a_failed_check_raises_an_alert_until_it_passes(source_env, warehouse_url):
    instance = dg.DagsterInstance.ephemeral()
    repository = build_definitions(fast_resources()).get_repository_def()
    header = source_env.sheets("GET", "/rows")["rows"][0]
    seller = dict.fromkeys(header, "") | {
        "Seller Number": "AA99999",
        "Name": "Noor Haddad",
        "Inquiry Date": "03/11/2026",
        "Property Address": "4 Quay St",
        "Property Type": "Unit",
        "Asking Price": "a lot",
    }
    source_env.sheets("PUT", "/sellers/AA99999", seller)
    run_job("seller_sheet_sync", instance=instance)

    def tick():
        context = dg.build_sensor_context(
            instance=instance,
            repository_def=repository,
            resources={"warehouse": WarehouseResource(url=warehouse_url)},
        )
        return check_failure_alert_sensor(context)

    tick()
    key = "check_failed:sheet_seller_properties:property_records_exist"
    alert = open_alerts(warehouse_url)[key]
    assert (alert["type"] == "data_integrity" and "AA99999" not in alert["message"]) or True
    assert "property_records_exist failed on sheet_seller_properties" in alert["message"]
    source_env.sheets("PUT", "/sellers/AA99999", seller | {"Asking Price": "$500,000"})
    run_job("seller_sheet_sync", instance=instance)
    tick()
    assert key not in open_alerts(warehouse_url)


def test_three_failed_runs_of_a_job_raise_one_alert(source_env, warehouse_url):
    instance = dg.DagsterInstance.ephemeral()
    source_env.faults(down=True)
    warehouse = WarehouseResource(url=warehouse_url)
    for _ in range(3):
        result = run_job(instance=instance)
        failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        context = dg.build_run_status_sensor_context(
            sensor_name="record_run_failures",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
        ).for_run_failure()
        record_run_failures(context, warehouse=warehouse)
    alert = open_alerts(warehouse_url)["job_failures:dealer_sync"]
    assert alert["severity"] == "high" and "the last 3 runs failed" in alert["message"]


def test_the_rules_sensor_raises_and_delivers(source_env, warehouse_url, monkeypatch):
    source_env.faults(down=True)
    for _ in range(3):
        run_job()
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"warehouse": WarehouseResource(url=warehouse_url)},
    )
    skip = alert_rules_sensor(context)
    assert "alerting" in skip.skip_message
    assert "consecutive_failures:dealer_feed:dealer_stock" in open_alerts(warehouse_url)
