"""The executor every job runs on, chosen by the deployment, not by the code
(SYNC_PLATFORM_EXECUTOR, read when the code location loads; docs/distributed.md).

Unset (or "multiprocess"): Dagster's default, a process per step on the run worker's host (or
in-process when a run's config asks), except that step processes are forked from a forkserver
that has already built the code location, instead of each importing it again
(docs/performance.md, "Orchestration overhead"). A run's config may still choose `in_process`
or another `start_method`.

"dask": dagster-dask's executor against an existing Dask scheduler, whose address is read
from SYNC_PLATFORM_DASK_SCHEDULER when a run starts. Each step is a Dask task run by one of
the cluster's workers (orchestration/dask_cluster.py starts a loopback one). Dagster's op-level
pools are not enforced there: see docs/distributed.md for what keeps two syncs of one entity
apart instead."""

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
    """dagster-dask's executor on the scheduler SYNC_PLATFORM_DASK_SCHEDULER names (resolved
    by Dagster when a run starts, so a missing address fails the run saying which variable to
    set). Imported only when chosen: dask.distributed is a heavy import every step would pay."""
    from dagster_dask import dask_executor

    address = {"env": settings.DASK_SCHEDULER_ENV}
    return dask_executor.configured({"cluster": {"existing": {"address": address}}})


def executor_from_environment() -> dg.ExecutorDefinition:
    """The executor SYNC_PLATFORM_EXECUTOR names (ValueError for one this code location
    does not have: a misspelt deployment fails to load rather than run on the wrong one)."""
    if settings.executor() == "dask":
        return dask_scheduler_executor()
    return forkserver_executor()


step_executor = executor_from_environment()
