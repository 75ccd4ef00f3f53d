"""A run whose worker process dies (kill -9, the OOM killer) ends FAILED and gives its pool
slots back, and a daemon-launched one is retried. Before the run launcher could tell a dead
worker, a killed `dagster job execute` stayed STARTED and held its pool slots for good, so
every later run of its entities waited.

First the launcher's health check on its own (processes this test starts), then the whole
path under `dagster-daemon run`: a real `dagster job execute` killed mid-step, then a
daemon-launched run killed mid-step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from sync_platform.orchestration.run_launcher import PidCheckingRunLauncher
from sync_platform_tests.test_dealer_end_to_end import source_stock, warehouse_stock

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

LAUNCHER = {"module": "sync_platform.orchestration.run_launcher", "class": "PidCheckingRunLauncher"}


@dg.op
def _noop() -> None:
    pass


@dg.job
def _tiny() -> None:
    _noop()


@pytest.fixture
def instance():
    overrides = {"run_launcher": LAUNCHER | {"config": {"same_host": True}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        yield instance


@pytest.fixture
def sleeper():
    """A live process this test started (and stops)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait(timeout=30)


def _started_run(instance: dg.DagsterInstance, tags: dict[str, str] | None = None, **origin):
    return instance.create_run_for_job(
        _tiny, status=dg.DagsterRunStatus.STARTED, tags=tags, **origin
    )


def _code_server_origin(host: str) -> dict[str, RemoteJobOrigin]:
    """What a run launched through a code server on `host` records of where it came from."""
    location = GrpcServerCodeLocationOrigin(host=host, port=4266, location_name="here")
    return {"remote_job_origin": RemoteJobOrigin(RemoteRepositoryOrigin(location, "repo"), "_tiny")}


def _record_pid(instance, run, pid: int, at: float | None = None) -> None:
    """The engine event a run worker writes first ("Started process for run (pid: N)")."""
    event = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.ENGINE_EVENT.value,
        job_name=run.job_name,
        message=f"Started process for run (pid: {pid}).",
        event_specific_data=EngineEventData.in_process(pid),
    )
    instance.store_event(
        dg.EventLogEntry(
            error_info=None,
            level=logging.DEBUG,
            user_message=event.message,
            run_id=run.run_id,
            timestamp=time.time() if at is None else at,
            dagster_event=event,
        )
    )


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


def _monitor(instance, run) -> dg.DagsterRun:
    """One pass of Dagster's run monitoring over this run; the run as it is after."""
    record = instance.get_run_record_by_id(run.run_id)
    monitor_started_run(instance, None, record, logging.getLogger("test"))
    return instance.get_run_by_id(run.run_id)


def test_the_instance_builds_the_launcher_from_its_config(instance):
    launcher = instance.run_launcher
    assert isinstance(launcher, PidCheckingRunLauncher)
    assert launcher.same_host and launcher.supports_check_run_worker_health
    assert launcher.inst_data.config_dict == {"same_host": True}
    assert isinstance(launcher, dg.DefaultRunLauncher)  # launches through the code server


def test_a_live_worker_is_running_and_its_run_left_alone(instance, sleeper):
    run = _started_run(instance)
    _record_pid(instance, run, sleeper.pid)
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    assert _monitor(instance, run).status == dg.DagsterRunStatus.STARTED


def test_a_dead_worker_fails_its_run_saying_what_happened(instance):
    run = _started_run(instance)
    pid = _dead_pid()
    _record_pid(instance, run, pid)
    health = instance.run_launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED
    assert health.msg.startswith(f"the run worker (pid {pid}) is gone — killed or out of memory")
    assert "`dagster job execute` is not retried" in health.msg  # no code server origin
    assert _monitor(instance, run).status == dg.DagsterRunStatus.FAILURE
    failure = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    assert health.msg in failure[0].event_log_entry.message


def test_a_killed_worker_not_yet_reaped_is_dead(instance):
    zombie = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        run = _started_run(instance)
        _record_pid(instance, run, zombie.pid)
        zombie.kill()
        time.sleep(0.5)  # killed, and not waited for: a zombie until reaped below
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.FAILED
    finally:
        zombie.wait(timeout=30)


def test_a_pid_taken_by_a_newer_process_is_a_dead_worker(instance, sleeper):
    run = _started_run(instance)
    _record_pid(instance, run, sleeper.pid, at=time.time() - 60)  # the worker's, a minute ago
    health = instance.run_launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED
    assert "its pid now belongs to a newer process" in health.msg


def test_no_pid_recorded_yet_is_not_a_dead_worker(instance):
    """Run monitoring fails a run on anything but RUNNING, so "cannot tell" must be RUNNING."""
    run = _started_run(instance)
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    assert _monitor(instance, run).status == dg.DagsterRunStatus.STARTED


def test_a_worker_beside_a_code_server_on_another_host_is_never_judged(instance):
    """Dagster records the code server a launched run's worker was started by."""
    # 192.0.2.1 is TEST-NET-1: never this machine.
    elsewhere = _started_run(
        instance,
        {GRPC_INFO_TAG: json.dumps({"host": "192.0.2.1", "port": 4266})},
        **_code_server_origin("192.0.2.1"),
    )
    here = _started_run(
        instance,
        {GRPC_INFO_TAG: json.dumps({"host": "localhost", "port": 4266})},
        **_code_server_origin("localhost"),
    )
    pid = _dead_pid()
    for run in (elsewhere, here):
        _record_pid(instance, run, pid)
    assert instance.run_launcher.check_run_worker_health(elsewhere).status == WorkerStatus.RUNNING
    assert _monitor(instance, elsewhere).status == dg.DagsterRunStatus.STARTED
    health = instance.run_launcher.check_run_worker_health(here)
    assert health.status == WorkerStatus.FAILED
    assert health.msg.endswith(
        "freed, and the run retry re-executes it unless its retries are used up"
    )


def test_without_same_host_the_launcher_never_judges():
    overrides = {"run_launcher": LAUNCHER}  # same_host defaults to false
    with dg.instance_for_test(overrides=overrides) as instance:
        launcher = instance.run_launcher
        assert not launcher.same_host and not launcher.supports_check_run_worker_health
        run = _started_run(instance)
        _record_pid(instance, run, _dead_pid())
        assert launcher.check_run_worker_health(run).status == WorkerStatus.UNKNOWN
        assert _monitor(instance, run).status == dg.DagsterRunStatus.STARTED


# -- the whole path under the daemon ---------------------------------------------------------

POLL_SECONDS = 2  # run monitoring's poll interval in this test's instance (30 in dagster.yaml)
FREE_SLOTS_SECONDS = 3  # free_slots_after_run_end_seconds (60 in dagster.yaml)
POOLS = ("sync_dealer_stock", "sync_dealer_leads")


def _dagster_home(tmp_path) -> Path:
    """The repo's embedded dagster.yaml, with this test's short intervals written in."""
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    config["run_monitoring"] |= {
        "poll_interval_seconds": POLL_SECONDS,
        "free_slots_after_run_end_seconds": FREE_SLOTS_SECONDS,
    }
    config["run_coordinator"]["config"] = {"dequeue_interval_seconds": 1}
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    # Create the instance's storage now: the daemon and a run started at the same moment
    # would both create it, and one fails on the other's migration stamp.
    with dg.DagsterInstance.from_config(str(home)):
        pass
    return home


def _wait_for(what: str, seconds: float, found):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds} s")


def _step_started(instance, run_id: str) -> bool:
    return bool(
        instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    )


def _claimed_by(instance, run_ids: set[str]) -> list[tuple[str, str]]:
    """Pool slots claimed, or steps waiting for one, by these runs: (pool, step)."""
    held = []
    for pool in POOLS:
        info = instance.event_log_storage.get_concurrency_info(pool)
        held += [(pool, s.step_key) for s in info.claimed_slots if s.run_id in run_ids]
        held += [(pool, s.step_key) for s in info.pending_steps if s.run_id in run_ids]
    return held


def _kill_tree(pid: int, group: bool = False) -> None:
    """SIGKILL a run worker (with `group`, its whole process group, as a terminal's kill of
    `dagster job execute` would) and any of its step processes left: the OOM killer takes
    only the worker, the test leaves nothing of the run behind."""
    try:
        tree = psutil.Process(pid)
        processes = [tree, *tree.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    if group:
        os.killpg(pid, signal.SIGKILL)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _engine_events(instance, run_id: str) -> list[dg.EventLogRecord]:
    return instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records


def _worker_pid(instance, run_id: str) -> int:
    for record in _engine_events(instance, run_id):
        metadata = record.event_log_entry.dagster_event.event_specific_data.metadata
        if "pid" in metadata:
            return int(metadata["pid"].value)
    raise AssertionError(f"run {run_id} recorded no worker pid")


def _finished(instance, run_id: str, seconds: float, what: str) -> dg.RunRecord:
    _wait_for(what, seconds, lambda: instance.get_run_by_id(run_id).is_finished)
    return instance.get_run_record_by_id(run_id)


def _failure_message(instance, run_id: str) -> str:
    failure = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return failure.records[0].event_log_entry.message


def _dealer_runs(instance) -> list[dg.DagsterRun]:
    """The dealer_sync runs (the daemon's sensors launch runs of their own meanwhile)."""
    return instance.get_runs(filters=dg.RunsFilter(job_name="dealer_sync"))


def _children(instance, run_id: str) -> list[dg.DagsterRun]:
    return instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))


class Processes:
    """The Dagster processes this test starts, each in its own process group, with the test's
    environment; all stopped at the end, with whatever they started."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs, self.started = env, logs, []

    def start(self, name: str, *command: str) -> subprocess.Popen:
        with (self.logs / f"{name}.log").open("w") as log:
            process = subprocess.Popen(
                [str(BIN / command[0]), *command[1:]],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):  # what it left (code server, workers)
                os.killpg(process.pid, signal.SIGKILL)


def test_killed_run_workers_fail_free_their_slots_and_a_launched_run_is_retried(
    simulator, pg_database, tmp_path
):
    home = _dagster_home(tmp_path)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SYNC_PLATFORM_WAREHOUSE_URL": pg_database,
        "DEALER_FEED_BASE_URL": f"{simulator.url}/dealer",
        "DEALER_FEED_API_KEY": "sim-dealer-key",
        # How often the daemon looks for failed runs to retry (5 s by default).
        "DAGSTER_EVENT_LOG_CONSUMER_DAEMON_INTERVAL_SECONDS": "1",
    }
    (tmp_path / "logs").mkdir()
    processes = Processes(env, tmp_path / "logs")
    # Every dealer request takes 20 s: the manual run is surely mid-step when it is killed.
    simulator.faults(latency_ms=20_000)
    try:
        processes.start("daemon", "dagster-daemon", "run", "-w", "workspace.yaml")
        manual = processes.start(
            "manual", "dagster", "job", "execute", "-m", "sync_platform.definitions", "-j",
            "dealer_sync",
        )  # fmt: skip
        with dg.DagsterInstance.from_config(str(home)) as instance:
            manual_id = _wait_for("the manual run", 90, lambda: _dealer_runs(instance))[0].run_id
            # A run launched now waits for the manual one (one dealer run at a time). Its steps
            # run in process: the retry is what is under test, and it saves a step process
            # start-up per step on a small machine.
            launch = processes.start(
                "launch", "dagster", "job", "launch", "-w", "workspace.yaml", "-j", "dealer_sync",
                "--config-json", json.dumps({"execution": {"config": {"in_process": {}}}}),
            )  # fmt: skip
            _wait_for("its first step", 60, lambda: _step_started(instance, manual_id))
            assert _claimed_by(instance, {manual_id})  # it holds its pool slots
            assert launch.wait(timeout=120) == 0, (tmp_path / "logs" / "launch.log").read_text()
            launched_id = next(r.run_id for r in _dealer_runs(instance) if r.run_id != manual_id)
            assert instance.get_run_by_id(launched_id).status == dg.DagsterRunStatus.QUEUED

            simulator.faults(latency_ms=2_000)  # the launched run: still slow enough to kill
            _kill_tree(manual.pid, group=True)
            killed_manual_at = time.time()
            manual.wait(timeout=30)
            record = _finished(instance, manual_id, 30, "the killed manual run ended")
            assert record.dagster_run.status == dg.DagsterRunStatus.FAILURE
            message = _failure_message(instance, manual_id)
            assert "is gone — killed or out of memory" in message
            assert "`dagster job execute` is not retried: run it again" in message
            manual_failed_after = record.end_time - killed_manual_at
            _wait_for("its slots freed", 60, lambda: not _claimed_by(instance, {manual_id}))
            manual_freed_after = time.time() - killed_manual_at

            # The launched run gets the dead run's slots, starts, and is killed mid-step. Its
            # code server, whose child the worker was, or run monitoring fails it, whichever
            # notices first (only run monitoring would, were the code server gone too).
            _wait_for("its first step", 90, lambda: _step_started(instance, launched_id))
            launched_stepped_after = time.time() - killed_manual_at
            _kill_tree(_worker_pid(instance, launched_id))
            killed_launched_at = time.time()
            simulator.faults()
            record = _finished(instance, launched_id, 30, "the killed launched run ended")
            assert record.dagster_run.status == dg.DagsterRunStatus.FAILURE
            message = _failure_message(instance, launched_id)
            said = [r.event_log_entry.message for r in _engine_events(instance, launched_id)]
            assert "the run retry re-executes it" in message or any(
                "was terminated by signal 9" in line for line in said
            ), (message, said)
            launched_failed_after = record.end_time - killed_launched_at

            retry = _wait_for("its retry", 60, lambda: _children(instance, launched_id))[0]
            record = _finished(instance, retry.run_id, 90, "the retry ended")
            assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            retried_after = record.end_time - killed_launched_at

            killed = {manual_id, launched_id}
            _wait_for("the killed runs' slots freed", 30, lambda: not _claimed_by(instance, killed))
            # Dagster retries only runs launched through a code server, never `job execute`.
            assert _children(instance, manual_id) == []
    finally:
        simulator.faults()
        processes.stop_all()
    assert warehouse_stock(pg_database) == source_stock(simulator)
    print(
        f"\nmanual run: kill → FAILURE {manual_failed_after:.1f} s, → slots free "
        f"{manual_freed_after:.1f} s, → the waiting run's first step {launched_stepped_after:.1f} s"
        f"\nlaunched run: kill → FAILURE {launched_failed_after:.1f} s, → retry SUCCESS "
        f"{retried_after:.1f} s"
    )
