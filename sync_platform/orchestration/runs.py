"""What the schedules and sensors ask of Dagster's run storage: is a run of this job (with
these tags) still queued or going? A tick that would only start a second copy skips."""

from collections.abc import Mapping

import dagster as dg

UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def unfinished(
    instance: dg.DagsterInstance,
    job_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> bool:
    """Whether a run of `job_name` (any job when None) with `tags` is queued or going."""
    filters = dg.RunsFilter(job_name=job_name, statuses=UNFINISHED, tags=dict(tags or {}))
    return bool(instance.get_run_records(filters=filters, limit=1))
