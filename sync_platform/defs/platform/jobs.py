"""`full_sync`: every unpartitioned source entity, the demo's main job."""

import dagster as dg

from sync_platform.orchestration.tags import LAYER_TAG, PARTITIONING_TAG

full_sync = dg.define_asset_job(
    "full_sync",
    selection=dg.AssetSelection.tag(LAYER_TAG, "source")
    - dg.AssetSelection.tag(PARTITIONING_TAG, "daily"),
    description="Every unpartitioned source entity, in dependency order (the demo's main job). "
    "Daily-partitioned sources (GA4) run by partition: see their own jobs.",
)
