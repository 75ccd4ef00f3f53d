"""Run a job's steps as tasks on a Dask cluster, with Dagster's own step bookkeeping.

dagster-dask's `dask_executor` (0.29) cannot run this code location's jobs as it ships, and
what it can run loses guarantees the platform relies on:

- it hands the run to `Client.submit` as a positional argument; dask ≥ 2025 walks tuple
  arguments, and a run whose steps have pools carries a record that refuses iteration, so
  every job here failed before its first step ("Iteration is not allowed on `@record`
  RunOpConcurrency");
- its Dask task keys are `<job>.<step>`, and Dask runs one task per key: a second run of a
  job started while the first is going gets the first run's results and "succeeds" without
  running anything (dagster-io/dagster#21418, closed unfixed);
- it never claims pool slots (no `InstanceConcurrencyContext`): `pool=` is not enforced;
- it submits every step up front, so a step runs even when a step it depends on failed, and
  a blocking check that failed does not stop what is downstream of it;
- its steps run with retries disabled: a `RetryPolicy` is not honoured.

This executor keeps dagster-dask's model (an existing scheduler; each step a task that
builds the plan for that one step and runs it on a worker, writing its events to Dagster's
storage) and drives it with the state machine Dagster's multiprocess executor uses
(`ActiveExecution` with an `InstanceConcurrencyContext`): a step is submitted once what it
depends on has succeeded and its pool slot is claimed, is retried by its `RetryPolicy`, and
is left out when something upstream failed; the run reacts to termination.

Those building blocks have no public spelling (the multiprocess and step-delegating executors
import them the same way), hence the private imports below.
"""

import functools
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster._core.events import EngineEventData
from dagster._core.execution.api import create_execution_plan, execute_plan_iterator
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.retries import RetryMode
from dagster._utils.error import serializable_error_info_from_exc_info
from dagster_dask.executor import get_dask_resource_requirements

# How long to wait for a step to finish before looking again at retries, pool slots and
# termination (seconds).
POLL_SECONDS = 1.0


def execute_step_on_worker(
    recon_job: Any,
    dagster_run: dg.DagsterRun,
    run_config: Mapping[str, object],
    step_key: str,
    instance_ref: Any,
    known_state: Any,
    retry_mode: RetryMode,
    repository_load_data: Any,
) -> tuple[str, int, str]:
    """The Dask task of one step: build the plan for this step alone and run it in this
    worker (the events are written to Dagster's storage as they happen); the worker's name,
    its pid and the events, serialized (Dask would otherwise walk them to size them), for the
    orchestrating run to follow."""
    from distributed import get_worker

    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        plan = create_execution_plan(
            recon_job,
            run_config=run_config,
            step_keys_to_execute=[step_key],
            known_state=known_state,
            repository_load_data=repository_load_data,
        )
        events = dg.serialize_value(
            list(
                execute_plan_iterator(
                    plan,
                    recon_job,
                    dagster_run,
                    instance,
                    retry_mode=retry_mode.for_inner_plan(),
                    run_config=run_config,
                )
            )
        )
    return str(get_worker().name), os.getpid(), events


class DaskStepExecutor(dg.Executor):
    def __init__(self, address: str, retries: RetryMode = RetryMode.ENABLED):
        self.address = address
        self._retries = retries

    @property
    def retries(self) -> RetryMode:
        return self._retries

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        from distributed import Client, wait

        instance = plan_context.instance
        if not instance.is_persistent:
            raise dg.DagsterInvariantViolationError(
                "the dask executor needs a persistent Dagster instance (DAGSTER_HOME with "
                "storage every worker reaches: PostgreSQL), see docs/distributed.md"
            )
        run = plan_context.dagster_run
        yield dg.DagsterEvent.engine_event(
            plan_context,
            f"Executing steps on the Dask cluster at {self.address} (orchestrating process "
            f"pid {os.getpid()})",
            EngineEventData.multiprocess(
                os.getpid(), step_keys_to_execute=execution_plan.step_keys_to_execute
            ),
        )
        with (
            Client(self.address) as client,
            InstanceConcurrencyContext(instance, run) as pools,
            execution_plan.start(
                retry_mode=self.retries,
                instance_concurrency_context=pools,
                step_dependency_config=self.step_dependency_config,
            ) as active,
        ):
            running: dict[Any, str] = {}  # future -> step key
            attempts: dict[str, int] = {}
            try:
                while not active.is_complete or running:
                    if active.check_for_interrupts():
                        yield from self._interrupt(plan_context, client, active, running)
                    # No more steps out than the cluster has threads: a step holds its pool
                    # slot from here, and should not hold it queued behind other steps.
                    free = sum(client.nthreads().values()) - len(running)
                    for step in active.get_steps_to_execute(limit=max(free, 0)):
                        attempts[step.key] = attempts.get(step.key, 0) + 1
                        task = functools.partial(
                            execute_step_on_worker,
                            recon_job=plan_context.reconstructable_job,
                            dagster_run=run,
                            run_config=plan_context.run_config,
                            step_key=step.key,
                            instance_ref=instance.get_ref(),
                            known_state=active.get_known_state(),
                            retry_mode=self.retries,
                            repository_load_data=execution_plan.repository_load_data,
                        )
                        # Bound, not passed: Dask would walk a run passed as an argument.
                        future = client.submit(
                            task,
                            key=f"{run.run_id}.{step.key}.{attempts[step.key]}",
                            pure=False,
                            resources=get_dask_resource_requirements(step.tags) or None,
                        )
                        running[future] = step.key
                    yield from active.concurrency_event_iterator(plan_context)
                    if not running:  # waiting for a retry's delay, a pool slot or a worker
                        time.sleep(min(max(active.sleep_interval(), 0.05), POLL_SECONDS))
                        continue
                    try:
                        finished = wait(
                            list(running), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED"
                        ).done
                    except TimeoutError:
                        finished = set()
                    for future in finished:
                        step_key = running.pop(future)
                        yield from self._step_finished(plan_context, active, step_key, future)
                        active.verify_complete(plan_context, step_key)
                    yield from active.plan_events_iterator(plan_context)
            except BaseException:
                # Steps already running finish on their workers (Dask cannot stop a task);
                # the ones not yet started are dropped.
                client.cancel(list(running))
                raise

    def _step_finished(self, plan_context, active, step_key, future) -> Iterator[dg.DagsterEvent]:
        step_context = plan_context.for_step(active.get_step_by_key(step_key))
        try:
            worker, pid, serialized = future.result()
            events = dg.deserialize_value(serialized, as_type=list)
        except Exception:
            # The task itself failed (e.g. its workers died: Dask gave up after retrying it
            # elsewhere): the step's own events may be missing, so record its failure here.
            error = serializable_error_info_from_exc_info(sys.exc_info())
            yield dg.DagsterEvent.engine_event(
                step_context,
                f"The Dask task of step {step_key} failed: {error.message.strip()}",
                EngineEventData.engine_error(error),
            )
            failure = self.log_failure_or_retry_event_after_error(
                step_context, error, active.get_known_state()
            )
            active.handle_event(failure)
            yield failure
            return
        yield dg.DagsterEvent.engine_event(
            step_context,
            f"Step {step_key} ran on Dask worker {worker} (pid {pid})",
            # not "pid": run monitoring reads the run worker's pid from the first such key
            EngineEventData(
                metadata={
                    "dask_worker": dg.MetadataValue.text(worker),
                    "dask_worker_pid": dg.MetadataValue.int(pid),
                }
            ),
        )
        for event in events:
            yield event
            active.handle_event(event)
            if event.is_resource_init_failure:
                failure = self.log_failure_or_retry_event_after_error(
                    step_context, event.engine_event_data.error, active.get_known_state()
                )
                yield failure
                active.handle_event(failure)

    def _interrupt(self, plan_context, client, active, running) -> Iterator[dg.DagsterEvent]:
        yield dg.DagsterEvent.engine_event(
            plan_context,
            "Dask executor: termination requested; steps not started are cancelled, steps "
            f"already running finish on their workers: {sorted(running.values())}",
            EngineEventData.interrupted(sorted(running.values())),
        )
        active.mark_interrupted()
        client.cancel(list(running))
        raise dg.DagsterExecutionInterruptedError()


@dg.executor(
    name="dask",
    config_schema={
        "address": dg.Field(
            dg.StringSource, description="the Dask scheduler, e.g. tcp://127.0.0.1:8786"
        )
    },
    requirements=dg.multiple_process_executor_requirements(),
)
def dask_step_executor(init_context: dg.InitExecutorContext) -> DaskStepExecutor:
    """Each step a task on an existing Dask cluster; pools, retries and upstream failures
    handled as by Dagster's multiprocess executor (orchestration/dask_executor.py)."""
    return DaskStepExecutor(init_context.executor_config["address"])
