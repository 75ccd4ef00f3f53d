"""The one Definitions entry point: everything under defs/, plus the shared resources."""

from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from sync_platform.resources import all_resources


def build_definitions(resources: Mapping[str, object] | None = None) -> dg.Definitions:
    """The code location's definitions; `resources` replaces some of the defaults by key."""
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources={**all_resources(), **(resources or {})}),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
