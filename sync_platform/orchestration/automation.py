"""The job and schedule boilerplate every defs folder shares: a source's asset job carries its
source tag (health and alerts group runs by it); every schedule runs in UTC and is on from
the first deploy, so nothing depends on someone switching it on in the UI; a schedule of a
source that is not configured skips its ticks saying what to set instead of launching runs
that fail."""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from sync_platform.orchestration.configuration import unset
from sync_platform.orchestration.tags import FULL_REFRESH_TAG, SOURCE_TAG

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
    full_refresh: bool = False,
):
    """An asset job that syncs (part of) one source (what `dg.define_asset_job` returns);
    `full_refresh` makes it a full read whatever run config a launch adds."""
    tags = {SOURCE_TAG: source} | ({FULL_REFRESH_TAG: "true"} if full_refresh else {})
    return dg.define_asset_job(name, selection=selection, description=description, tags=tags)


def not_configured(required_env: Sequence[str]) -> dg.SkipReason | None:
    """A skip saying what to set, when any of these variables is unset; else None."""
    missing = unset(required_env)
    if not missing:
        return None
    return dg.SkipReason(f"not configured: set {', '.join(missing)} (see docs/sources/)")


def utc_schedule(
    name: str,
    job: Any,
    cron: str,
    *,
    requires: Sequence[str] = (),
    description: str | None = None,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> dg.ScheduleDefinition:
    """A cron schedule of a job (asset or op based) that requests one run per tick with
    `run_config` and run `tags`, or skips while a variable of `requires` is unset."""

    @dg.schedule(name=name, job=job, cron_schedule=cron, description=description, **RUNNING_IN_UTC)
    def _schedule(_context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        return not_configured(requires) or dg.RunRequest(
            run_config=dict(run_config or {}), tags=dict(tags or {})
        )

    return _schedule
