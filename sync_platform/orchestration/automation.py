"""The job and schedule boilerplate every defs folder shares: a source's asset job carries its
source tag (health and alerts group runs by it); every schedule runs in UTC and is on from
the first deploy, so nothing depends on someone switching it on in the UI."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from sync_platform.orchestration.tags import SOURCE_TAG

# For `@dg.schedule(...)` functions that decide their own run requests.
RUNNING_IN_UTC: dict[str, Any] = {
    "execution_timezone": "UTC",
    "default_status": dg.DefaultScheduleStatus.RUNNING,
}


def source_job(
    name: str,
    selection: dg.AssetSelection,
    *,
    source: str,
    description: str,
    config: Mapping[str, Any] | None = None,
):
    """An asset job that syncs (part of) one source (what `dg.define_asset_job` returns)."""
    return dg.define_asset_job(
        name, selection=selection, description=description, tags={SOURCE_TAG: source}, config=config
    )


def utc_schedule(
    name: str,
    job: Any,
    cron: str,
    **options: Any,
) -> dg.ScheduleDefinition:
    """A cron schedule of a job, asset or op based (`options`: description, run_config,
    tags)."""
    return dg.ScheduleDefinition(
        name=name, job=job, cron_schedule=cron, **RUNNING_IN_UTC, **options
    )
