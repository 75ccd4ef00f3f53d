"""The executor every job runs on: Dagster's default (a process per step, or in-process when
a run's config asks), except that step processes are forked from a forkserver that has
already built the code location, instead of each importing it again (docs/performance.md,
"Orchestration overhead"). A run's config may still choose `in_process` or another
`start_method`."""

from typing import Any

import dagster as dg

# Imported by the forkserver before it forks the first step: it builds the definitions once.
PRELOAD_MODULE = "sync_platform.definitions_preload"
FORKSERVER = {"forkserver": {"preload_modules": ["dagster", PRELOAD_MODULE]}}


def _forkserver_by_default(config: dict[str, Any]) -> dict[str, Any]:
    multiprocess = config.get("multiprocess")
    if multiprocess is None or "start_method" in multiprocess:
        return config
    return {"multiprocess": {**multiprocess, "start_method": FORKSERVER}}


step_executor = dg.multi_or_in_process_executor.configured(
    _forkserver_by_default,
    config_schema=dg.multi_or_in_process_executor.config_schema.as_field(),
)
