"""A Dask cluster on one host for the dask executor (SYNC_PLATFORM_EXECUTOR=dask): a
`dask scheduler` and N `dask worker` processes, started here and stopped by the process ids
started, never by name. Tests and a single-host deployment use it; on several hosts, run
`worker_command` on each (docs/distributed.md).

    python -m sync_platform.orchestration.dask_cluster --workers 2 --port 8786

Each worker runs one step at a time (`--nthreads 1`: Dagster's step execution is not
thread-safe) and builds the code location once when it starts (`--preload`, the module the
forkserver preloads), so a step does not import and build it again. A worker executes steps
with its own environment: it needs the same variables as the run worker (warehouse, sources,
DAGSTER_HOME, DAGSTER_PG_*, SYNC_PLATFORM_EXECUTOR and SYNC_PLATFORM_DASK_SCHEDULER: a step's
plan is built from the worker's own definitions)."""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from sync_platform import settings

PRELOAD_MODULE = "sync_platform.definitions_preload"
DASK = str(Path(sys.executable).parent / "dask")


def scheduler_command(host: str, port: int, scheduler_file: Path | None = None) -> list[str]:
    command = [DASK, "scheduler", "--host", host, "--port", str(port), "--no-dashboard"]
    return command + (["--scheduler-file", str(scheduler_file)] if scheduler_file else [])


def worker_command(
    scheduler: str, name: str, host: str = "127.0.0.1", *, nanny: bool = True
) -> list[str]:
    """One worker process attached to `scheduler` (tcp://host:port), listening on `host`;
    under a nanny process that restarts it if it dies, unless `nanny` is false."""
    return [
        DASK, "worker", scheduler,
        "--name", name,
        "--host", host,
        "--nthreads", "1",
        "--nworkers", "1",
        "--nanny" if nanny else "--no-nanny",
        "--preload", PRELOAD_MODULE,
        "--no-dashboard",
    ]  # fmt: skip


class LocalDaskCluster:
    """A scheduler and `workers` workers on `host`, as child processes of this one; a
    context manager that stops them (by their pids) on exit. `address` is what
    SYNC_PLATFORM_DASK_SCHEDULER must say; `env` is the workers' environment. Without a
    `nanny` each worker is the process started (half the processes: tests on a small
    machine), and a worker that dies stays dead."""

    def __init__(
        self,
        workers: int = 2,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        start_timeout: float = 120,
        nanny: bool = True,
    ):
        self.workers, self.host, self.port, self.nanny = workers, host, port, nanny
        self.env = dict(os.environ if env is None else env)
        self.start_timeout = start_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="sync-platform-dask-")
        self.log_dir = log_dir or Path(self._tmp.name)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen] = []
        self.address = ""

    def _start(self, name: str, command: Sequence[str]) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        self.processes.append(process)
        return process

    def start(self) -> "LocalDaskCluster":
        deadline = time.monotonic() + self.start_timeout
        scheduler_file = Path(self._tmp.name) / "scheduler.json"
        scheduler = self._start(
            "scheduler", scheduler_command(self.host, self.port, scheduler_file)
        )
        while not scheduler_file.exists():
            self._check_alive(scheduler, "scheduler", deadline)
            time.sleep(0.2)
        self.address = json.loads(scheduler_file.read_text())["address"]
        # A worker builds each step's plan from its own definitions, executor included: it
        # needs the scheduler's address as much as the run worker does.
        self.env[settings.DASK_SCHEDULER_ENV] = self.address
        for number in range(1, self.workers + 1):
            self._start(
                f"worker-{number}",
                worker_command(self.address, f"worker-{number}", self.host, nanny=self.nanny),
            )
        from distributed import Client

        with Client(self.address, timeout=self.start_timeout) as client:
            client.wait_for_workers(self.workers, timeout=max(1.0, deadline - time.monotonic()))
        return self

    def _check_alive(self, process: subprocess.Popen, name: str, deadline: float) -> None:
        if process.poll() is not None:
            raise RuntimeError(f"dask {name} exited ({process.returncode}); see {self.log_dir}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"dask {name} did not start in {self.start_timeout} s")

    def worker_pids(self) -> dict[str, int]:
        """The process id of each worker that executes steps, by its name."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            pids = client.run(os.getpid)
            names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
        return {str(names[address]): pid for address, pid in pids.items()}

    def stop(self, timeout: float = 30) -> None:
        """Stop the workers, then the scheduler (a worker whose scheduler went first waits
        on its connection before exiting): SIGTERM to each process started here, SIGKILL to
        one still there after `timeout`."""
        workers, scheduler = self.processes[1:], self.processes[:1]
        for group in (workers, scheduler):
            for process in group:
                if process.poll() is None:
                    os.kill(process.pid, signal.SIGTERM)
            for process in group:
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
        self.processes.clear()
        self._tmp.cleanup()

    def __enter__(self) -> "LocalDaskCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="A Dask scheduler and workers on this host for SYNC_PLATFORM_EXECUTOR=dask, "
        "with this shell's environment (docs/distributed.md)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8786)
    parser.add_argument("--log-dir", type=Path, help="kept after the cluster stops")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the cluster on SIGTERM too
    cluster = LocalDaskCluster(args.workers, host=args.host, port=args.port, log_dir=args.log_dir)
    with cluster:
        print(f"export SYNC_PLATFORM_EXECUTOR=dask SYNC_PLATFORM_DASK_SCHEDULER={cluster.address}")
        print(f"workers: {cluster.worker_pids()}; logs in {cluster.log_dir}; Ctrl-C stops them")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
