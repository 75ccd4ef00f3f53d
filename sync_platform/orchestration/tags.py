"""The tags the platform puts on runs and assets, and reads back (one spelling each)."""

from sync_platform.engine.audit import TRIGGERS  # the triggers sync_runs.trigger accepts

TRIGGER_TAG = "sync_platform/trigger"  # a run: resync / backfill / sensor / scheduled / manual
SOURCE_TAG = "sync_platform/source"  # a run or asset: the source it syncs
# A run of a job that is not one source's: what it is for (all_sources, health, alerting, …)
AREA_TAG = "sync_platform/area"
LAYER_TAG = "sync_platform/layer"  # an asset: "source" (synced entity) or "mart"
RESYNC_TAG = "sync_platform/resync"  # an asset: "keys" when it can resync single record keys
PARTITIONING_TAG = "sync_platform/partitioning"  # an asset: "daily" when daily-partitioned
# A job or run: "true" makes every incremental entity it syncs read everything and treat it as
# a complete snapshot. A tag, not run config, so a run config a person adds (e.g. to confirm a
# mass delete) cannot turn a full sync into a delta.
FULL_REFRESH_TAG = "sync_platform/full_refresh"
# A failed check's metadata: true when the platform is already healing what the check saw (a
# gap it will resync, a table the next sync brings in step), so no alert is raised for it.
HEALING_METADATA = "sync_platform/healing"
# Check metadata: the failure has its own alert type, which knows when it stops being true
# (a reconciliation's discrepancies are resolved outside Dagster): no check_failed alert.
ALERTED_BY_METADATA = "sync_platform/alerted_by"


def trigger_of(tags: dict[str, str]) -> str:
    """How this run started, for the audit table (resync/backfill/sensor/scheduled/manual).
    A trigger tag a person set to something else (a launch from the UI or CLI) is manual."""
    if tags.get(TRIGGER_TAG):
        return tags[TRIGGER_TAG] if tags[TRIGGER_TAG] in TRIGGERS else "manual"
    if tags.get("dagster/backfill"):
        return "backfill"
    if tags.get("dagster/sensor_name"):
        return "sensor"
    if tags.get("dagster/schedule_name"):
        return "scheduled"
    return "manual"
