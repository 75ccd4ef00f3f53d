"""The tags the platform puts on runs and assets, and reads back (one spelling each)."""

TRIGGER_TAG = "sync_platform/trigger"  # a run: resync / backfill / sensor / scheduled / manual
SOURCE_TAG = "sync_platform/source"  # a run or asset: the source it syncs
LAYER_TAG = "sync_platform/layer"  # an asset: "source" (synced entity) or "mart"
RESYNC_TAG = "sync_platform/resync"  # an asset: "keys" when it can resync single record keys
PARTITIONING_TAG = "sync_platform/partitioning"  # an asset: "daily" when daily-partitioned


def trigger_of(tags: dict[str, str]) -> str:
    """How this run started, for the audit table (resync/backfill/sensor/scheduled/manual)."""
    if tags.get(TRIGGER_TAG):
        return tags[TRIGGER_TAG]
    if tags.get("dagster/backfill"):
        return "backfill"
    if tags.get("dagster/sensor_name"):
        return "sensor"
    if tags.get("dagster/schedule_name"):
        return "scheduled"
    return "manual"
