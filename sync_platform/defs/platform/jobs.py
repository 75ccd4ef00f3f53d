import dagster as dg

from sync_platform.orchestration.sync_asset import LAYER_TAG

full_sync = dg.define_asset_job(
    "full_sync",
    selection=dg.AssetSelection.tag(LAYER_TAG, "source"),
    description="Every unpartitioned source entity, in dependency order (the demo's main job).",
)
