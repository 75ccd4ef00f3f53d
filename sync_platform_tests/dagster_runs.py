"""Run the code location's jobs in-process against the simulator, and read what they did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from sync_platform.definitions import build_definitions
from sync_platform.defs.dealer_feed.resources import DealerFeedResource
from sync_platform.defs.ga4.resources import GA4Resource
from sync_platform.defs.legacy_erp.resources import LegacyErpResource
from sync_platform.defs.n8n.resources import N8nApiResource
from sync_platform.defs.seller_sheet.resources import SellerSheetResource

FAST_RETRIES = {"retry_attempts": 4, "retry_wait_initial": 0.01, "retry_wait_jitter": 0.01}


def fast_resources(ga4_page_size: int = 100_000, **dealer_overrides) -> dict[str, object]:
    """The production resources, configured from the same environment variables, with
    short retry waits so fault tests stay fast."""
    return {
        "dealer_feed": DealerFeedResource(
            base_url=dg.EnvVar("DEALER_FEED_BASE_URL"),
            api_key=dg.EnvVar("DEALER_FEED_API_KEY"),
            page_size=50,
            **(FAST_RETRIES | dealer_overrides),
        ),
        "legacy_erp": LegacyErpResource(
            base_url=dg.EnvVar("LEGACY_ERP_BASE_URL"),
            username=dg.EnvVar("LEGACY_ERP_USERNAME"),
            password=dg.EnvVar("LEGACY_ERP_PASSWORD"),
            page_size=100,
            **FAST_RETRIES,
        ),
        "seller_sheet": SellerSheetResource(
            spreadsheet_id=dg.EnvVar("SELLER_SHEET_ID"),
            base_url=dg.EnvVar("SELLER_SHEET_BASE_URL"),
            service_account_json=dg.EnvVar("GOOGLE_SERVICE_ACCOUNT_JSON"),
        ),
        "ga4": GA4Resource(
            property_id=dg.EnvVar("GA4_PROPERTY_ID"),
            base_url=dg.EnvVar("GA4_BASE_URL"),
            service_account_json=dg.EnvVar("GOOGLE_SERVICE_ACCOUNT_JSON"),
            page_size=ga4_page_size,
        ),
        "n8n_api": N8nApiResource(
            base_url=dg.EnvVar("N8N_BASE_URL"), api_key=dg.EnvVar("N8N_API_KEY"), **FAST_RETRIES
        ),
    }


def run_job(
    name: str = "dealer_sync",
    *,
    run_config=None,
    instance=None,
    partition_key: str | None = None,
    tags: dict[str, str] | None = None,
    **resource_overrides,
) -> dg.ExecuteInProcessResult:
    job = build_definitions(fast_resources(**resource_overrides)).resolve_job_def(name)
    return job.execute_in_process(
        run_config=run_config,
        instance=instance or dg.DagsterInstance.ephemeral(),
        partition_key=partition_key,
        tags=tags,
        raise_on_error=False,
    )


def partition_range(start: str, end: str) -> dict[str, str]:
    """Run tags for a single run over a partition range (what a backfill sends)."""
    return {
        "dagster/asset_partition_range_start": start,
        "dagster/asset_partition_range_end": end,
    }


def run_requested(request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Execute a sensor's RunRequest the way the daemon would: its assets, config and tags."""
    job = build_definitions(fast_resources()).resolve_implicit_global_asset_job_def()
    subset = job.get_subset(asset_selection=set(request.asset_selection))
    return subset.execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    found = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        found[materialization.asset_key.to_user_string()] = {
            key: value.value for key, value in materialization.metadata.items()
        }
    return found


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}": evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }


def failure_sensor_decision(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance):
    """What `record_run_failures` decides for this failed run, as the daemon would ask it."""
    from sync_platform.defs.platform.sensors import record_run_failures

    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = dg.build_run_status_sensor_context(
        sensor_name="record_run_failures",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    return record_run_failures(context)


def check_metadata(result: dg.ExecuteInProcessResult, check: str) -> dict[str, object]:
    """The metadata of one check evaluation ("asset:check") of a run, plus its `passed`."""
    for evaluation in result.get_asset_check_evaluations():
        if f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}" == check:
            values = {key: value.value for key, value in evaluation.metadata.items()}
            return values | {"passed": evaluation.passed}
    raise AssertionError(f"{check} was not evaluated by run {result.run_id}")


def execute_as_operator(job: str, dagster_home: Path) -> dg.DagsterInstance:
    """`dagster job execute -m sync_platform.definitions -j <job>` in a subprocess, as an
    operator runs it (the code location loaded as a repository, the environment of this
    process), on an instance in `dagster_home`; the instance, to read what the run did."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    command = [str(Path(sys.executable).parent / "dagster"), "job", "execute"]
    completed = subprocess.run(
        [*command, "-m", "sync_platform.definitions", "-j", job],
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return dg.DagsterInstance.from_config(str(dagster_home))


def latest_materialization(instance: dg.DagsterInstance, asset: str) -> dict:
    """The metadata of an asset's latest materialization, as plain values."""
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None, f"{asset} was never materialized"
    metadata = event.asset_materialization.metadata
    return {key: value.value for key, value in metadata.items()}
