"""The code location loads and holds what operators rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from sync_platform.definitions import defs

REPO = Path(__file__).resolve().parent.parent


def repository() -> dg.RepositoryDefinition:
    return defs().get_repository_def()


def test_expected_assets_checks_jobs_schedules_and_sensors_exist():
    repo = repository()
    assets = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    checks = {key.to_user_string() for key in repo.asset_graph.asset_check_keys}
    assert {"dealer_stock", "dealer_leads"} <= assets
    for entity in ("dealer_stock", "dealer_leads"):
        for check in ("schema_valid", "quarantine_rate", "in_step_with_source"):
            assert f"{entity}:{check}" in checks
    assert {"dealer_sync", "full_sync"} <= {job.name for job in repo.get_all_jobs()}
    assert "dealer_sync_every_15_minutes" in {s.name for s in repo.schedule_defs}
    assert {"record_run_failures", "sync_gap_sensor"} <= {s.name for s in repo.sensor_defs}


def test_sync_assets_use_pools_kinds_retries_and_freshness_policies():
    repo = repository()
    node = repo.asset_graph.get(dg.AssetKey("dealer_stock"))
    assert node.freshness_policy.fail_window.to_timedelta().total_seconds() == 3600
    stock = node.assets_def
    assert stock.op.pool == "sync_dealer_stock"
    assert "polars" in stock.specs_by_key[dg.AssetKey("dealer_stock")].kinds
    assert stock.op.retry_policy.backoff == dg.Backoff.EXPONENTIAL
    assert stock.group_names_by_key[dg.AssetKey("dealer_stock")] == "dealer_feed"


def test_schema_check_is_blocking():
    graph = repository().asset_graph
    assert graph.get(dg.AssetCheckKey(dg.AssetKey("dealer_stock"), "schema_valid")).blocking
    assert not graph.get(dg.AssetCheckKey(dg.AssetKey("dealer_stock"), "quarantine_rate")).blocking


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    return subprocess.run(
        list(args),
        cwd=REPO,
        env=env | {"VIRTUAL_ENV": sys.prefix},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dagster_definitions_validate_and_dg_check_defs_pass():
    bin_dir = Path(sys.executable).parent
    validate = _cli(
        str(bin_dir / "dagster"), "definitions", "validate", "-m", "sync_platform.definitions"
    )
    assert validate.returncode == 0, validate.stderr[-2000:]
    check = _cli(str(bin_dir / "dg"), "check", "defs")
    assert check.returncode == 0, check.stderr[-2000:]
    assert "All definitions loaded successfully" in check.stdout + check.stderr


def test_both_instances_free_the_pool_slots_of_runs_that_died(tmp_path):
    """A run killed mid-sync keeps its pool slot (one per entity) unless run monitoring
    fails it and frees the slot: without this, a kill -9 blocks that entity's syncs for good.
    Failing it takes a run launcher that can tell its worker is gone
    (test_run_worker_killed.py)."""
    import shutil

    import yaml

    from sync_platform.orchestration.run_launcher import PidCheckingRunLauncher

    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60
        assert isinstance(instance.run_launcher, PidCheckingRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
    production = yaml.safe_load((REPO / "deploy" / "production" / "dagster.yaml").read_text())
    assert production["run_monitoring"]["free_slots_after_run_end_seconds"] == 60
    assert production["run_launcher"] == {
        "module": "sync_platform.orchestration.run_launcher",
        "class": "PidCheckingRunLauncher",
        "config": {"same_host": True},
    }


def test_every_source_asset_names_its_owners_table_and_columns():
    from sync_platform.config import all_source_configs

    repo = repository()
    for source in all_source_configs():
        assert source.owners, f"{source.source}.yaml names no owners"
        for entity in source.entities.values():
            spec = repo.asset_graph.get(dg.AssetKey(entity.name)).assets_def.specs_by_key[
                dg.AssetKey(entity.name)
            ]
            assert spec.owners == source.owners
            assert spec.metadata["dagster/table_name"] == entity.table
            schema = spec.metadata["dagster/column_schema"]
            assert [c.name for c in schema.columns] == entity.columns
            keyed = [c.name for c in schema.columns if c.constraints.unique]
            assert keyed == (entity.key if len(entity.key) == 1 else [])


def test_lineage_runs_from_each_source_system_through_the_tables_to_the_mart():
    from sync_platform.config import all_source_configs
    from sync_platform.orchestration.source_systems import endpoint_name, source_system_key

    assert endpoint_name("/api/v1/stock") == "stock" and endpoint_name("Sellers!A1:H") == "Sellers"
    assert endpoint_name("/webhooks/n8n/form_submission") == "form_submission"
    repo = repository()
    graph = repo.asset_graph
    executable = {
        key for job in repo.get_all_jobs() for key in job.asset_layer.executable_asset_keys
    }
    for source in all_source_configs():
        assert source.system, f"{source.source}.yaml names no system"
        for entity in source.entities.values():
            system = source_system_key(source, entity)
            node = graph.get(system)
            assert node.is_external and not node.is_materializable
            assert node.group_name == source.source
            assert system in graph.get(dg.AssetKey(entity.name)).parent_keys
            spec = node.assets_def.specs_by_key[system]
            assert entity.endpoint in spec.metadata["endpoint"].split(", ")
            assert entity.name in spec.description
            assert spec.metadata["docs"].value == source.system.docs
            assert system not in executable
    # the mart's lineage reaches back to the systems its tables are read from
    upstream = graph.get_ancestor_asset_keys(dg.AssetKey("mart_daily_kpis"))
    assert {
        dg.AssetKey(["ga4", "runReport"]),
        dg.AssetKey(["dealer_feed", "leads"]),
    } <= set(upstream)


def test_the_mart_names_its_owners_table_and_columns():
    from sync_platform.warehouse.mart_tables import mart_daily_kpis

    key = dg.AssetKey("mart_daily_kpis")
    spec = repository().asset_graph.get(key).assets_def.specs_by_key[key]
    assert spec.owners == ["team:marketing"]
    assert spec.metadata["dagster/table_name"] == "mart_daily_kpis"
    columns = spec.metadata["dagster/column_schema"].columns
    assert [c.name for c in columns] == [c.name for c in mart_daily_kpis.columns]
    by_name = {c.name: c for c in columns}
    assert by_name["date"].constraints.unique and not by_name["date"].constraints.nullable
    assert by_name["new_users"].constraints.nullable and by_name["sessions"].type == "bigint"


def test_every_job_tags_its_runs_with_the_source_or_the_area_it_serves():
    from sync_platform.orchestration.tags import AREA_TAG, SOURCE_TAG

    untagged = [
        job.name
        for job in repository().get_all_jobs()
        if not job.name.startswith("__") and not ({SOURCE_TAG, AREA_TAG} & set(job.tags))
    ]
    assert untagged == []


def test_every_schedule_and_sensor_says_what_it_does_in_the_ui():
    repo = repository()
    undescribed = [d.name for d in [*repo.schedule_defs, *repo.sensor_defs] if not d.description]
    assert undescribed == []


def test_the_reconciliation_is_its_own_job_schedule_and_group():
    repo = repository()
    node = repo.asset_graph.get(dg.AssetKey("dealer_reconciliation"))
    assert node.group_name == "reconciliation"
    jobs = {job.name: job for job in repo.get_all_jobs()}
    assert {"dealer_reconciliation_job", "dealer_reconciliation_resolve"} <= set(jobs)
    dealer_sync_assets = jobs["dealer_sync"].asset_layer.executable_asset_keys
    assert dg.AssetKey("dealer_reconciliation") not in dealer_sync_assets
    assert "dealer_reconciliation_weekly" in {s.name for s in repo.schedule_defs}


def test_ga4_partitions_start_on_the_configured_first_day():
    from sync_platform.defs.ga4.assets import with_history_start
    from sync_platform.errors import ConfigurationError

    source = with_history_start(cached_ga4(), "2026-11-01")
    assert {e.partition_start.isoformat() for e in source.entities.values()} == {"2026-11-01"}
    assert with_history_start(cached_ga4(), None) == cached_ga4()
    with pytest.raises(ConfigurationError, match="GA4_PARTITION_START") as refused:
        with_history_start(cached_ga4(), "last spring")
    assert "YYYY-MM-DD" in refused.value.hint
    env = {**os.environ, "GA4_PARTITION_START": "2026-11-01"}
    script = (
        "from sync_platform.defs.ga4.assets import GA4_PARTITIONS;"
        "print(GA4_PARTITIONS.start.date().isoformat())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert result.stdout.strip() == "2026-11-01", result.stderr[-2000:]


def cached_ga4():
    from sync_platform.config import cached_source_config

    return cached_source_config("ga4")
