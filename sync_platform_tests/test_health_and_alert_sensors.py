"""The health report (CLI and asset) and the Dagster sensors that raise alerts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from sync_platform.alerting.health import as_markdown, health_report
from sync_platform.config import all_source_configs, cached_source_config
from sync_platform.definitions import build_definitions
from sync_platform.defs.ops.alerting import (
    alert_rules_sensor,
    apply_alert_work,
    check_conditions,
    op_job_conditions,
)
from sync_platform.defs.seller_sheet.checks import property_records_exist
from sync_platform.defs.seller_sheet.resources import SellerSheetResource
from sync_platform.engine import audit
from sync_platform.orchestration.configuration import unconfigured_sources
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.warehouse.platform_tables import sync_alerts, sync_quarantine
from sync_platform_simulator.environment import simulator_environment
from sync_platform_tests.dagster_runs import (
    execute_as_operator,
    failure_sensor_decision,
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


def test_health_cli_exit_codes_and_json_shape(source_env, warehouse_url):
    never = health_cli(warehouse_url, "--json")
    assert never.returncode == 1, never.stderr
    report = json.loads(never.stdout)
    assert set(report) >= {"healthy", "entities", "recent_alerts", "quality_issues", "generated_at"}
    assert report["not_configured"] == {}  # the simulator's environment configures every source
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


def alert_tick(instance, repository, warehouse_url):
    """One tick of the rules sensor, then the run it asked for, as the daemon would."""
    warehouse = WarehouseResource(url=warehouse_url)
    context = dg.build_sensor_context(
        instance=instance, repository_def=repository, resources={"warehouse": warehouse}
    )
    decision = alert_rules_sensor(context)
    if isinstance(decision, dg.RunRequest):
        apply_alert_work(warehouse.get_engine(), instance, repository)
    return decision


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

    decision = alert_tick(instance, repository, warehouse_url)
    assert isinstance(decision, dg.RunRequest)
    key = "check_failed:sheet_seller_properties:property_records_exist"
    alert = open_alerts(warehouse_url)[key]
    assert alert["type"] == "data_integrity" and alert["severity"] == "medium"
    assert "property_records_exist failed on sheet_seller_properties" in alert["message"]
    assert "1 seller(s) have property data but no property record" in alert["message"]

    # A run that dies before its checks run leaves them planned, not evaluated: the sensor
    # keeps judging by the last evaluation instead of failing its ticks.
    source_env.faults(down=True)
    assert not run_job("seller_sheet_sync", instance=instance).success
    latest = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("sheet_seller_properties"), "property_records_exist")
    )
    assert not isinstance(latest.evaluation, dg.AssetCheckEvaluation)  # only planned
    alert_tick(instance, repository, warehouse_url)
    assert key in open_alerts(warehouse_url)

    source_env.faults()
    source_env.sheets("PUT", "/sellers/AA99999", seller | {"Asking Price": "$500,000"})
    run_job("seller_sheet_sync", instance=instance)
    alert_tick(instance, repository, warehouse_url)
    assert key not in open_alerts(warehouse_url)


def test_the_rules_sensor_decides_and_the_run_raises(source_env, warehouse_url):
    source_env.faults(down=True)
    instance = dg.DagsterInstance.ephemeral()
    repository = build_definitions(fast_resources()).get_repository_def()
    for _ in range(3):
        run_job(instance=instance)
    warehouse = WarehouseResource(url=warehouse_url)
    context = dg.build_sensor_context(
        instance=instance, repository_def=repository, resources={"warehouse": warehouse}
    )
    # the dealer API is down: the first run that met its open breaker already said so
    assert set(open_alerts(warehouse_url)) == {"source_down:dealer_feed"}
    decision = alert_rules_sensor(context)
    assert isinstance(decision, dg.RunRequest) and decision.run_key.startswith("alerts:")
    assert set(open_alerts(warehouse_url)) == {
        "source_down:dealer_feed"
    }  # the sensor wrote nothing
    assert alert_rules_sensor(context).run_key == decision.run_key  # same work, same key

    counts, _ = apply_alert_work(warehouse.get_engine(), instance, repository)
    assert counts["raised"] >= 1
    assert "consecutive_failures:dealer_feed:dealer_stock" in open_alerts(warehouse_url)
    again = alert_rules_sensor(context)
    assert isinstance(again, dg.SkipReason) and "nothing to" in again.skip_message


def test_runs_that_die_before_their_sync_count_per_entity_not_per_job(source_env, warehouse_url):
    """A sheet run that fails on its credentials never starts a sync: each failure is still
    counted against the sheet's entities, and the alert names them, not a job."""
    instance = dg.DagsterInstance.ephemeral()
    broken = SellerSheetResource(
        spreadsheet_id=dg.EnvVar("SELLER_SHEET_ID"),
        base_url=dg.EnvVar("SELLER_SHEET_BASE_URL"),
        service_account_json="not a key and not a file",
    )
    definitions = build_definitions({**fast_resources(), "seller_sheet": broken})
    recorder = definitions.resolve_job_def("record_run_failure")
    for _ in range(3):
        job = definitions.resolve_job_def("seller_sheet_sync")
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        request = failure_sensor_decision(result, instance)
        assert request.run_key == f"failed-run:{result.run_id}"
        recorded = recorder.execute_in_process(run_config=request.run_config, instance=instance)
        assert recorded.success
    repository = definitions.get_repository_def()
    apply_alert_work(WarehouseResource(url=warehouse_url).get_engine(), instance, repository)
    alerts = open_alerts(warehouse_url)
    for entity in ("sheet_sellers", "sheet_seller_properties"):
        alert = alerts[f"consecutive_failures:seller_sheet:{entity}"]
        assert "the last 3 syncs failed" in alert["message"]
        assert "GOOGLE_SERVICE_ACCOUNT_JSON" in alert["message"]
    assert not [key for key in alerts if key.startswith("job_failures:")]


def test_a_first_start_with_one_source_configured_raises_nothing(
    warehouse_url, monkeypatch, simulator
):
    """Production's first start: only the dealer feed is configured. Nothing is stale yet
    (the dealer feed gets one freshness window), and nothing at all is said about the sources
    that are not configured, except in the health report."""
    for name, value in simulator_environment(simulator.url).items():
        monkeypatch.delenv(name, raising=False)
        if name.startswith("DEALER_FEED"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SYNC_PLATFORM_WAREHOUSE_URL", warehouse_url)
    instance = dg.DagsterInstance.ephemeral()
    repository = build_definitions().get_repository_def()
    assert alert_tick(instance, repository, warehouse_url).skip_message  # nothing to do...
    counts, _ = apply_alert_work(  # ...and a run would have raised nothing either
        WarehouseResource(url=warehouse_url).get_engine(), instance, repository
    )
    assert counts["raised"] == 0 and open_alerts(warehouse_url) == {}

    # A schedule reads the instance's runs (is its previous run unfinished?), so its context
    # needs a persistent instance, as the daemon's is.
    with dg.instance_for_test() as stored, dg.build_schedule_context(instance=stored) as context:
        schedule = repository.get_schedule_def("seller_sheet_every_10_minutes")
        skip = schedule.evaluate_tick(context).skip_message
        assert "not configured: set" in skip and "SELLER_SHEET_ID" in skip
        dealer = repository.get_schedule_def("dealer_sync_every_15_minutes")
        assert dealer.evaluate_tick(context).run_requests

    with WarehouseResource(url=warehouse_url).get_engine().connect() as connection:
        report = health_report(
            connection, all_source_configs(), {}, not_configured=unconfigured_sources(repository)
        )
    assert set(report["not_configured"]) == {"ga4", "legacy_erp", "n8n", "seller_sheet"}
    assert {entity["source"] for entity in report["entities"]} == {"dealer_feed", "n8n_events"}
    assert "**Not configured**" in as_markdown(report)


def test_a_check_failure_the_platform_is_healing_raises_no_alert(warehouse_url):
    """A failed check whose metadata says healing (a gap in resync, two tables a moment out
    of step) is not an alert; the same failure without it is."""
    instance = dg.DagsterInstance.ephemeral()
    repository = build_definitions(fast_resources()).get_repository_def()
    key = dg.AssetCheckKey(dg.AssetKey("dealer_stock"), "in_step_with_source")

    def evaluate(healing: bool) -> bool:
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=False,
                metadata={"sync_platform/healing": healing},
            )
        )
        (condition,) = [
            condition
            for condition in check_conditions(instance, repository, unconfigured=set())
            if condition.dedup_key == "check_failed:dealer_stock:in_step_with_source"
        ]
        return condition.holds

    assert evaluate(healing=True) is False
    assert evaluate(healing=False) is True


@dg.asset
def _report_of_nothing() -> None:
    raise RuntimeError("cannot build the report")


def test_a_job_whose_assets_sync_no_entity_is_alerted_by_its_own_name():
    """Runs of a job that syncs no source entity (a report, a mart) leave no sync_runs row,
    so their failures are counted per job; an entity's job is counted per entity instead."""
    report_job = dg.define_asset_job("report_job", selection=[_report_of_nothing])
    repository = dg.Definitions(assets=[_report_of_nothing], jobs=[report_job]).get_repository_def()
    instance = dg.DagsterInstance.ephemeral()
    job = repository.get_job("report_job")

    def holds() -> bool:
        (condition,) = op_job_conditions(instance, repository, limit=2)
        assert condition.dedup_key == "job_failures:report_job"
        return condition.holds

    assert not job.execute_in_process(instance=instance, raise_on_error=False).success
    assert holds() is False
    assert not job.execute_in_process(instance=instance, raise_on_error=False).success
    assert holds() is True
    dealer = build_definitions(fast_resources()).get_repository_def()
    assert "job_failures:dealer_sync" not in {
        condition.dedup_key for condition in op_job_conditions(instance, dealer, limit=2)
    }


def test_sellers_a_moment_ahead_of_their_properties_are_healing_unless_refused(
    source_env, warehouse_url
):
    """The two seller tables come from separate reads: a seller whose property row is not
    there yet is healing (the next sync brings it); one whose row is quarantined is not."""
    run_job("seller_sheet_sync", instance=dg.DagsterInstance.ephemeral())
    engine = WarehouseResource(url=warehouse_url).get_engine()
    with engine.begin() as connection:
        seller = connection.execute(
            sa.text(
                "SELECT seller_number FROM sheet_seller_properties "
                "WHERE _deleted_at IS NULL ORDER BY seller_number LIMIT 1"
            )
        ).scalar_one()
        connection.execute(
            sa.text("DELETE FROM sheet_seller_properties WHERE seller_number = :s"), {"s": seller}
        )

    def evaluate() -> dict:
        context = dg.build_asset_check_context(
            resources={"warehouse": WarehouseResource(url=warehouse_url)}
        )
        result = property_records_exist(context)
        assert not result.passed and seller in result.metadata["seller_numbers"].value
        return result.metadata["sync_platform/healing"].value

    assert evaluate() is True
    with engine.begin() as connection:
        connection.execute(
            sa.insert(sync_quarantine),
            {
                "source": "seller_sheet",
                "entity": "sheet_seller_properties",
                "record_key": seller,
                "raw_record": json.dumps({"Seller Number": seller}),
                "reason": "Asking Price: 'a lot' is not a valid decimal",
                "quarantined_at": datetime.now(UTC),
            },
        )
    assert evaluate() is False
