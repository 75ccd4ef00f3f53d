"""The executor every job runs on, chosen by the deployment, not by the code
(SYNC_PLATFORM_EXECUTOR, read when the code location loads; docs/distributed.md).

Unset (or "multiprocess"): Dagster's default, a process per step on the run worker's host (or
in-process when a run's config asks), except that step processes are forked from a forkserver
that has already built the code location, instead of each importing it again
(docs/performance.md, "Orchestration overhead"). A run's config may still choose `in_process`
or another `start_method`.

"dask": each step a Dask task on an existing Dask cluster, whose scheduler's address is read
from SYNC_PLATFORM_DASK_SCHEDULER when a run starts (orchestration/dask_executor.py: dagster-
dask's model, with pools, retries and upstream failures kept as on the default executor;
orchestration/dask_cluster.py starts a loopback cluster)."""

from typing import Any

import dagster as dg

from sync_platform import settings

# Imported by the forkserver before it forks the first step: it builds the definitions once.
# The Dask workers preload it too (orchestration/dask_cluster.py).
PRELOAD_MODULE = "sync_platform.definitions_preload"
FORKSERVER = {"forkserver": {"preload_modules": ["dagster", PRELOAD_MODULE]}}


def _forkserver_by_default(config: dict[str, Any]) -> dict[str, Any]:
    multiprocess = config.get("multiprocess")
    if multiprocess is None or "start_method" in multiprocess:
        return config
    return {"multiprocess": {**multiprocess, "start_method": FORKSERVER}}


def forkserver_executor() -> dg.ExecutorDefinition:
    return dg.multi_or_in_process_executor.configured(
        _forkserver_by_default,
        config_schema=dg.multi_or_in_process_executor.config_schema.as_field(),
    )


def dask_scheduler_executor() -> dg.ExecutorDefinition:
    """Steps as Dask tasks on the scheduler SYNC_PLATFORM_DASK_SCHEDULER names (resolved by
    Dagster when a run starts, so a missing address fails the run naming the variable).
    Imported only when chosen: dask.distributed is a heavy import every step would pay."""
    from sync_platform.orchestration.dask_executor import dask_step_executor

    return dask_step_executor.configured({"address": {"env": settings.DASK_SCHEDULER_ENV}})


def executor_from_environment() -> dg.ExecutorDefinition:
    """The executor SYNC_PLATFORM_EXECUTOR names (ValueError for one this code location
    does not have: a misspelt deployment fails to load rather than run on the wrong one)."""
    if settings.executor() == "dask":
        return dask_scheduler_executor()
    return forkserver_executor()


step_executor = executor_from_environment()
