"""The one Definitions entry point: everything under defs/, plus the shared resources."""

from pathlib import Path

import dagster as dg

from sync_platform.resources import all_resources


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=all_resources()),
    )
