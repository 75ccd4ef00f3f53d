"""The job and schedule boilerplate every defs folder shares: a source's asset job carries its
source tag (health and alerts group runs by it); every schedule runs in UTC and is on from
the first deploy, so nothing depends on someone switching it on in the UI; a schedule of a
source that is not configured skips its ticks saying what to set instead of launching runs
that fail, and a schedule whose previous run is still going skips rather than queue a second.

`cadence` and `sensor_interval` compress every schedule and sensor by
SYNC_PLATFORM_CADENCE_SPEEDUP (the soak's hours in minutes); unset, they return what they
are given."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from croniter import croniter

from sync_platform import settings
from sync_platform.orchestration.configuration import unset
from sync_platform.orchestration.runs import unfinished
from sync_platform.orchestration.tags import FULL_REFRESH_TAG, SOURCE_TAG

# For `@dg.schedule(...)` functions that decide their own run requests.
RUNNING_IN_UTC: dict[str, Any] = {
    "execution_timezone": "UTC",
    "default_status": dg.DefaultScheduleStatus.RUNNING,
}


_CADENCE_BASE = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, so weekly crons fire after it


def cadence(cron: str) -> str:
    """`cron` as written, or, under a cadence speedup, an even cron whose period is the
    written period divided by the speedup, at least a minute (at 24 times: hourly → every
    2 minutes, daily → hourly, weekly → every 7 hours)."""
    speedup = settings.cadence_speedup()
    if speedup == 1:
        return cron
    ticks = croniter(cron, _CADENCE_BASE)
    first = ticks.get_next(datetime)
    period = (ticks.get_next(datetime) - first).total_seconds()
    minutes = max(1, round(period / speedup / 60))
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = round(minutes / 60)
    return "0 * * * *" if hours == 1 else f"0 */{hours} * * *" if hours < 24 else "0 0 * * *"


def sensor_interval(seconds: int) -> int:
    """A sensor's minimum interval, divided by the cadence speedup (at least 5 seconds)."""
    return max(5, round(seconds / settings.cadence_speedup()))


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
    description: str,
    requires: Sequence[str] = (),
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> dg.ScheduleDefinition:
    """A cron schedule of a job (asset or op based) that requests one run per tick with
    `run_config` and run `tags`; its `description` (when and why, shown in the UI's automation
    page) is required; it skips while a variable of `requires` is unset or while
    the run of its previous tick is still queued or going."""
    schedule_tag = {"dagster/schedule_name": name}

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cadence(cron),
        description=description,
        **RUNNING_IN_UTC,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        if skip := not_configured(requires):
            return skip
        if unfinished(context.instance, tags=schedule_tag):
            return dg.SkipReason(f"the previous run of {name} is not finished yet")
        return dg.RunRequest(run_config=dict(run_config or {}), tags=dict(tags or {}))

    return _schedule
