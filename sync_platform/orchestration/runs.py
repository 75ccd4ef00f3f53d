"""What the schedules and sensors ask of Dagster's run storage: is a run of this job (with
these tags) still queued or going? A tick that would only start a second copy skips."""

import time
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


def stop_waiting_for_runs(
    instance: dg.DagsterInstance, seconds: float, reason: str, *, cancel_queued: bool = False
) -> list[str]:
    """Wait up to `seconds` for every unfinished run (cancelling queued ones at once when
    `cancel_queued`), then cancel what is still queued and terminate what is still going,
    with `reason`. Returns "job (status)" of the runs stopped at the end. For a process that
    started a daemon and is about to stop it (the demo, the soak)."""
    queued = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]
    if cancel_queued:
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=queued)):
            instance.report_run_canceled(run, message=reason)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not unfinished(instance):
            return []
        time.sleep(2)
    left = instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED))
    for run in left:
        if run.status in queued or not instance.run_launcher.terminate(run.run_id):
            instance.report_run_canceled(run, message=reason)
    return [f"{run.job_name} ({run.status.value.lower()})" for run in left]
