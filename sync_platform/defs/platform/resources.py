"""The warehouse every job of the code location writes to, registered under `warehouse`."""

import dagster as dg

from sync_platform.orchestration.resources import WarehouseResource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"warehouse": WarehouseResource.from_env()})
