"""The one Definitions entry point: everything under defs/, where each folder brings its own
assets, checks, jobs, schedules, sensors and resources."""

from collections.abc import Mapping
from pathlib import Path

import dagster as dg


def build_definitions(resources: Mapping[str, object] | None = None) -> dg.Definitions:
    """The code location's definitions; `resources` replaces some of the folders' resources
    by key (tests point them at other settings)."""
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    if not resources:
        return loaded
    return dg.Definitions(
        assets=loaded.assets,
        asset_checks=loaded.asset_checks,
        schedules=loaded.schedules,
        sensors=loaded.sensors,
        jobs=loaded.jobs,
        resources={**(loaded.resources or {}), **resources},
        executor=loaded.executor,
        loggers=loaded.loggers,
        metadata=loaded.metadata,
        component_tree=loaded.component_tree,
    )


_preloaded: dg.Definitions | None = None


def preload() -> None:
    """Build the definitions once in this process, for the processes forked from it (the step
    forkserver, orchestration/executor.py). A failure here is left for the step to meet and
    report: the forkserver must not die of it."""
    global _preloaded
    try:
        loaded = build_definitions()
        loaded.get_repository_def()
    except Exception:
        return
    _preloaded = loaded


@dg.definitions
def defs() -> dg.Definitions:
    return _preloaded if _preloaded is not None else build_definitions()
