import dagster as dg

from sync_platform.orchestration.sync_asset import SOURCE_TAG

dealer_sync = dg.define_asset_job(
    "dealer_sync",
    selection=dg.AssetSelection.groups("dealer_feed"),
    description="Sync dealer stock (full snapshot) and leads (incremental) into the warehouse.",
    tags={SOURCE_TAG: "dealer_feed"},
)
