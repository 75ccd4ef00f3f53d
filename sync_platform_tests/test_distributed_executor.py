"""The same code location, unchanged, runs its jobs' steps on a Dask cluster: a scheduler and
two workers started on loopback by the project's own helper (orchestration/dask_cluster.py),
the executor chosen by SYNC_PLATFORM_EXECUTOR=dask, Dagster's storage and the warehouse in
PostgreSQL (docs/distributed.md).

- `full_sync` spread over both workers writes what a local (multiprocess) run writes;
- two runs of one job at once: each entity's pool keeps their syncs apart (dagster-dask's own
  executor claimed no pool slot, and ran the second run's steps not at all);
- several source jobs submitted at once under the production instance's QueuedRunCoordinator
  and daemon: never two runs of one source at a time (the `sync_platform/source` tag limit).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from sync_platform import settings
from sync_platform.orchestration.dask_cluster import LocalDaskCluster
from sync_platform.orchestration.executor import dask_scheduler_executor
from sync_platform.orchestration.tags import SOURCE_TAG
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.entity_tables import entity_table
from sync_platform.warehouse.platform_tables import sync_runs
from sync_platform_simulator.background_server import free_port, wait_for_port
from sync_platform_tests.conftest import all_entities, create_database, drop_database

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORKERS = 2


def _pg_variables(dagster_url: str) -> dict[str, str]:
    """The documented DAGSTER_PG_* variables for a database URL."""
    url = sa.make_url(dagster_url)
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database,
    }


def test_the_executor_is_chosen_by_the_environment(monkeypatch):
    from sync_platform.orchestration.executor import executor_from_environment

    monkeypatch.delenv(settings.EXECUTOR_ENV, raising=False)
    default = executor_from_environment()
    assert default.name == "multi_or_in_process_executor"  # Dagster's default, forkserver
    monkeypatch.setenv(settings.EXECUTOR_ENV, "dask")
    assert executor_from_environment().name == "dask"
    monkeypatch.setenv(settings.EXECUTOR_ENV, "celery")
    with pytest.raises(ValueError, match="SYNC_PLATFORM_EXECUTOR='celery'"):
        executor_from_environment()


def test_a_dask_run_without_a_scheduler_address_says_which_variable_to_set(monkeypatch, tmp_path):
    from sync_platform.orchestration.executor import dask_scheduler_executor

    monkeypatch.delenv(settings.DASK_SCHEDULER_ENV, raising=False)

    @dg.op
    def nothing() -> None: ...

    @dg.job(executor_def=dask_scheduler_executor())
    def one_step() -> None:
        nothing()

    with pytest.raises(dg.DagsterInvalidConfigError, match=settings.DASK_SCHEDULER_ENV):
        dg.validate_run_config(one_step)  # as a launched run's config is resolved


@dataclass
class DaskStack:
    home: Path
    warehouse_url: str
    cluster: LocalDaskCluster
    env: dict[str, str]  # a run worker's (and every Dask worker's) environment

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))


@pytest.fixture(scope="module")
def dask_stack(tmp_path_factory, pg_admin_url, pg_template, simulator_server):
    """The production instance (deploy/production/dagster.yaml, storage in a fresh PostgreSQL
    database), a fresh PostgreSQL warehouse, and a loopback Dask cluster whose workers have
    the same environment as a run worker: the simulator's sources, the warehouse, the
    instance."""
    from sync_platform_simulator.environment import simulator_environment

    suffix = uuid.uuid4().hex[:8]
    dagster_db, warehouse_db = (
        f"sync_platform_test_dagster_{suffix}",
        f"sync_platform_test_{suffix}",
    )
    dagster_url = create_database(pg_admin_url, dagster_db)
    warehouse_url = create_database(pg_admin_url, warehouse_db, template=pg_template)
    home = tmp_path_factory.mktemp("dask") / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "production" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        **simulator_environment(simulator_server.url),
        **_pg_variables(dagster_url),
        "DAGSTER_HOME": str(home),
        settings.WAREHOUSE_URL_ENV: warehouse_url,
        settings.EXECUTOR_ENV: "dask",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _pg_variables(dagster_url).items():
            patch.setenv(name, value)  # this process reads the instance too
        try:
            # no nannies: half the processes on a 2-CPU machine, and the pids started are
            # the processes that execute steps
            cluster = LocalDaskCluster(WORKERS, env=env, log_dir=home.parent, nanny=False)
            with cluster:
                env[settings.DASK_SCHEDULER_ENV] = cluster.address
                yield DaskStack(home, warehouse_url, cluster, env)
        finally:
            drop_database(pg_admin_url, warehouse_db)
            drop_database(pg_admin_url, dagster_db)


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _execute(job: str, env: dict[str, str]) -> subprocess.Popen:
    """`dagster job execute -m sync_platform.definitions -j <job>`, as an operator types it."""
    command = [str(BIN / "dagster"), "job", "execute", "-m", "sync_platform.definitions"]
    return _start([*command, "-j", job], env)


def _finish(process: subprocess.Popen, timeout: float = 300) -> None:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-4000:]


def _records(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType):
    return [r.event_log_entry for r in instance.get_records_for_run(run_id, of_type=kind).records]


def _newest_runs(instance: dg.DagsterInstance, job: str, count: int) -> list[dg.DagsterRun]:
    runs = instance.get_runs(dg.RunsFilter(job_name=job), limit=count)
    assert len(runs) == count, runs
    return runs


def warehouse_contents(url: str) -> dict[str, tuple[int, str]]:
    """Each entity table `full_sync` writes: its row count and a hash of its rows in key
    order (the synced columns, the row hash, whether deleted, the version; not when or by
    which sync run they were written)."""
    engine = create_warehouse_engine(url)
    contents = {}
    with engine.connect() as connection:
        for entity in all_entities():
            if entity.partition_column:  # daily GA4 entities: their own job, not full_sync
                continue
            table = entity_table(entity)
            columns = [table.c[name] for name in entity.fields]
            columns += [table.c._row_hash, table.c._deleted_at.is_(None), table.c._version]
            rows = connection.execute(
                sa.select(*columns).order_by(*[table.c[key] for key in entity.key])
            ).all()
            digest = hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()
            contents[entity.table] = (len(rows), digest[:16])
    engine.dispose()
    return contents


def audited_syncs(url: str, dagster_run_id: str) -> list[tuple]:
    """What each sync of a Dagster run recorded in the audit, without its times and ids."""
    engine = create_warehouse_engine(url)
    c = sync_runs.c
    figures = [c.source, c.entity, c.status, c.verification, c.fetched, c.inserted, c.updated]
    figures += [c.unchanged, c.soft_deleted, c.quarantined, c.failed, c.gap_count]
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(*figures)
            .where(c.dagster_run_id == dagster_run_id)
            .order_by(c.source, c.entity)
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def test_full_sync_on_two_dask_workers_writes_what_a_local_run_writes(
    dask_stack, simulator, pg_database
):
    started = time.monotonic()
    _finish(_execute("full_sync", dask_stack.env))
    on_dask = time.monotonic() - started

    simulator.reset()  # the same seed: the same sources for the local run
    dask_only = {settings.EXECUTOR_ENV, settings.DASK_SCHEDULER_ENV}
    local_env = {name: value for name, value in dask_stack.env.items() if name not in dask_only}
    local_env[settings.WAREHOUSE_URL_ENV] = pg_database
    started = time.monotonic()
    _finish(_execute("full_sync", local_env))
    local = time.monotonic() - started
    print(f"\nfull_sync wall time: {on_dask:.1f} s on {WORKERS} Dask workers, {local:.1f} s local")

    with dask_stack.instance() as instance:
        local_run, dask_run = _newest_runs(instance, "full_sync", 2)
        assert dask_run.status == local_run.status == dg.DagsterRunStatus.SUCCESS
        step_pids = {
            entry.step_key: entry.dagster_event.pid
            for entry in _records(instance, dask_run.run_id, dg.DagsterEventType.STEP_START)
        }
        orchestrator = {
            entry.dagster_event.pid
            for entry in _records(instance, dask_run.run_id, dg.DagsterEventType.RUN_START)
        }
    workers = set(dask_stack.cluster.worker_pids().values())
    assert workers == {process.pid for process in dask_stack.cluster.processes[1:]}
    assert len(step_pids) >= 10, step_pids
    # every step ran in a worker process of the cluster, and both workers took steps
    assert set(step_pids.values()) <= workers, (step_pids, workers)
    assert len(set(step_pids.values())) == WORKERS
    assert not orchestrator & workers

    on_dask_contents = warehouse_contents(dask_stack.warehouse_url)
    assert on_dask_contents == warehouse_contents(pg_database)
    synced = {table for table, (rows, _) in on_dask_contents.items() if rows}
    assert {"dealer_stock", "dealer_leads", "legacy_products", "legacy_variants"} <= synced
    assert {"legacy_customers", "sheet_sellers", "sheet_seller_properties"} <= synced
    dask_audit = audited_syncs(dask_stack.warehouse_url, dask_run.run_id)
    assert len(dask_audit) >= 9
    assert dask_audit == audited_syncs(pg_database, local_run.run_id)


def _step_spans(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step's (started, finished) timestamps in a run."""
    starts = {
        e.step_key: e.timestamp for e in _records(instance, run_id, dg.DagsterEventType.STEP_START)
    }
    ends = {
        e.step_key: e.timestamp
        for kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
        for e in _records(instance, run_id, kind)
    }
    return {step: (starts[step], ends[step]) for step in starts}


def _overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    return first[0] < second[1] and second[0] < first[1]


def test_two_syncs_of_one_entity_at_once_on_dask_run_one_after_the_other(dask_stack, simulator):
    """Two runs materializing `dealer_stock` started together by `dagster asset materialize`,
    no run queue in between, on a cluster with a free worker for each: only the executor's
    claim of pool `sync_dealer_stock` keeps them apart (dagster-dask's own executor claimed
    none: both syncs would start, and the warehouse lease would fail one of them)."""
    simulator.faults(latency_ms=1_500, paths=["/dealer"])  # a sync lasts a few seconds
    command = [str(BIN / "dagster"), "asset", "materialize", "-m", "sync_platform.definitions"]
    runs = [_start([*command, "--select", "dealer_stock"], dask_stack.env) for _ in range(2)]
    for process in runs:
        _finish(process)
    with dask_stack.instance() as instance:
        second, first = instance.get_runs(limit=2)
        assert first.status == second.status == dg.DagsterRunStatus.SUCCESS
        spans = [_step_spans(instance, run.run_id)["dealer_stock"] for run in (first, second)]
        waited = [
            entry.user_message
            for run in (first, second)
            for entry in _records(instance, run.run_id, dg.DagsterEventType.ENGINE_EVENT)
            if "blocked by limit for pool sync_dealer_stock" in entry.user_message
        ]
    assert not _overlap(*spans), spans
    # …and they did compete for the slot: one of them waited for it.
    assert waited, spans


def test_a_failed_sync_on_dask_keeps_what_depends_on_it_from_running(
    dask_stack, simulator, tmp_path
):
    """legacy_variants depends on legacy_products: when the products sync fails, the variants
    sync must not start (dagster-dask's own executor submitted it anyway), and the customers
    sync, which depends on nothing, still runs."""
    simulator.faults(down=True, paths=["/erp/api/v1/products"])
    one_attempt = {"source_settings": {"retry_attempts": 1}}  # fail at once, not after backoff
    config = {"ops": {"legacy_products": {"config": one_attempt}}}
    (tmp_path / "run.json").write_text(json.dumps(config))
    command = [str(BIN / "dagster"), "job", "execute", "-m", "sync_platform.definitions"]
    process = _start(
        [*command, "-j", "legacy_erp_sync", "-c", str(tmp_path / "run.json")], dask_stack.env
    )
    output, _ = process.communicate(timeout=300)
    assert process.returncode != 0, output[-3000:]
    with dask_stack.instance() as instance:
        (run,) = _newest_runs(instance, "legacy_erp_sync", 1)
        assert run.status == dg.DagsterRunStatus.FAILURE
        spans = _step_spans(instance, run.run_id)
        failed = {
            e.step_key for e in _records(instance, run.run_id, dg.DagsterEventType.STEP_FAILURE)
        }
        succeeded = {
            e.step_key for e in _records(instance, run.run_id, dg.DagsterEventType.STEP_SUCCESS)
        }
        left_out = [  # the orchestrator's log line for a step it does not start
            entry.step_key
            for entry in instance.all_logs(run.run_id)
            if "Not executing" in entry.user_message
        ]
    assert failed == {"legacy_products"}
    assert "legacy_customers" in succeeded
    assert "legacy_variants" not in spans
    assert "legacy_variants" in left_out, left_out


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2))
def fails_at_first() -> None:
    if dg.OpExecutionContext.get().retry_number == 0:
        raise RuntimeError("the first attempt fails")


@dg.job(executor_def=dask_scheduler_executor())
def flaky_on_dask() -> None:
    fails_at_first()


def test_a_step_is_retried_by_its_retry_policy_on_dask(dask_stack, monkeypatch):
    """dagster-dask's own executor ran steps with retries disabled."""
    monkeypatch.setenv(settings.DASK_SCHEDULER_ENV, dask_stack.cluster.address)
    with dask_stack.instance() as instance:
        result = dg.execute_job(dg.reconstructable(flaky_on_dask), instance)
        assert result.success
        kinds = [event.event_type for event in result.all_events if event.step_key]
    assert kinds.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1
    assert kinds.count(dg.DagsterEventType.STEP_RESTARTED) == 1


def _launch(job: str, env: dict[str, str], tags: dict[str, str]) -> subprocess.Popen:
    """`dagster job launch`: the run goes to the instance's run queue."""
    command = [str(BIN / "dagster"), "job", "launch", "-w", "deploy/production/workspace.yaml"]
    return _start([*command, "-j", job, "--tags", json.dumps(tags)], env)


SUBMITTED = ["dealer_sync", "dealer_sync", "seller_sheet_sync"]


def test_the_run_queue_runs_one_job_per_source_at_a_time_on_dask(dask_stack, simulator):
    """Several source jobs submitted at once to the production instance's QueuedRunCoordinator,
    dequeued by the daemon: two runs of one source never run at the same time (the
    `sync_platform/source` tag limit; a run the daemon's own schedules start meanwhile counts
    too)."""
    port = free_port()
    env = dask_stack.env | {
        "SYNC_PLATFORM_CODE_SERVER_HOST": "127.0.0.1",
        "SYNC_PLATFORM_CODE_SERVER_PORT": str(port),
    }
    batch = {"test": f"run-queue-{uuid.uuid4().hex[:8]}"}
    with dask_stack.instance() as instance:
        before = {run.run_id for run in instance.get_runs()}
    server_command = ["code-server", "start", "-m", "sync_platform.definitions"]
    processes = [
        subprocess.Popen(
            [str(BIN / "dagster"), *server_command, "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        wait_for_port(port, 120, "the code server")
        processes.append(
            subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", "deploy/production/workspace.yaml"],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        launches = [_launch(job, env, batch) for job in SUBMITTED]
        for launch in launches:
            _finish(launch, timeout=120)
        deadline = time.monotonic() + 240
        with dask_stack.instance() as instance:
            while time.monotonic() < deadline:
                ours = instance.get_run_records(dg.RunsFilter(tags=batch))
                if len(ours) == len(SUBMITTED) and all(r.dagster_run.is_finished for r in ours):
                    break
                time.sleep(2)
            runs = [r for r in instance.get_run_records() if r.dagster_run.run_id not in before]
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    ours = [r for r in runs if r.dagster_run.tags.get("test") == batch["test"]]
    assert sorted(r.dagster_run.job_name for r in ours) == sorted(SUBMITTED)
    assert {r.dagster_run.status for r in ours} == {dg.DagsterRunStatus.SUCCESS}
    spans = [
        (r.dagster_run.tags[SOURCE_TAG], (r.start_time, r.end_time or time.time()))
        for r in runs
        if SOURCE_TAG in r.dagster_run.tags and r.start_time is not None
    ]
    same_source = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if a[0] == b[0]]
    assert not [pair for pair in same_source if _overlap(pair[0][1], pair[1][1])], spans
    # …and it was the limit that kept the two dealer_sync runs apart: the later one was
    # already queued while the earlier one ran.
    first, second = sorted(
        (r for r in ours if r.dagster_run.job_name == "dealer_sync"), key=lambda r: r.start_time
    )
    assert second.create_timestamp.timestamp() < first.end_time
