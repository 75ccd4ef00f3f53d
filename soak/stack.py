"""The platform as production runs it, on loopback: two fresh PostgreSQL databases (Dagster's
storage through deploy/production/dagster.yaml, and the warehouse), the code server,
`dagster-daemon` (deploy/production/workspace.yaml), the webhook receiver, and the simulator
serving every source. Each process runs in its own session, stopped by the process group it
started; the databases are dropped at the end unless kept."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import httpx
import psutil
import pyrage
import sqlalchemy as sa

from sync_platform import settings
from sync_platform.config import all_source_configs
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.schema import upgrade_warehouse
from sync_platform_simulator.background_server import free_port
from sync_platform_simulator.environment import simulator_environment
from sync_platform_simulator.server import SimulatorServer

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_URL_ENV = "SYNC_PLATFORM_SOAK_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
STARTUP_SECONDS = 120
WORKERS = ("execute_run", "execute_step", "resume_run", "multiprocess", "watch_orphans")


def _admin(url: str) -> sa.Engine:
    return sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )


def _wait_for(what: str, ready, seconds: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what} exited while starting (see its log)")
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} was not ready within {seconds:.0f}s (see its log)")


@dataclass
class Stack:
    workdir: Path
    admin_url: str
    speedup: float
    seed: int
    keep: bool = False
    databases: list[str] = field(default_factory=list)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    simulator: SimulatorServer | None = None
    env: dict[str, str] = field(default_factory=dict)
    warehouse_url: str = ""
    receiver_url: str = ""

    @classmethod
    def prepare(
        cls,
        workdir: Path,
        *,
        speedup: float,
        seed: int,
        settings_: dict[str, str],
        keep: bool = False,
        admin_url: str | None = None,
    ) -> Stack:
        """Databases, DAGSTER_HOME, the simulator, the warehouse schema and settings; nothing
        of the platform runs yet. `admin_url`: a PostgreSQL server where the user may create
        databases (default: SYNC_PLATFORM_SOAK_PG_URL, else the local server)."""
        admin_url = admin_url or os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
        stack = cls(workdir, admin_url, speedup, seed, keep)
        workdir.mkdir(parents=True, exist_ok=True)
        suffix = uuid.uuid4().hex[:8]
        dagster_db = stack._database(f"sync_platform_soak_dagster_{suffix}")
        stack.warehouse_url = stack._database(f"sync_platform_soak_warehouse_{suffix}")
        home = workdir / "dagster_home"
        home.mkdir(exist_ok=True)
        shutil.copy(REPO / "deploy" / "production" / "dagster.yaml", home / "dagster.yaml")
        stack.simulator = SimulatorServer(seed=seed)
        stack.simulator.start()
        engine = create_warehouse_engine(stack.warehouse_url)
        upgrade_warehouse(
            engine, [e for source in all_source_configs() for e in source.entities.values()]
        )
        engine.dispose()
        dagster = sa.make_url(dagster_db)
        receiver_port = free_port()
        stack.receiver_url = f"http://127.0.0.1:{receiver_port}"
        stack.env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": dagster.host or "127.0.0.1",
            "DAGSTER_PG_PORT": str(dagster.port or 5432),
            "DAGSTER_PG_USER": dagster.username or "postgres",
            "DAGSTER_PG_PASSWORD": dagster.password or "",
            "DAGSTER_PG_DB": dagster.database or "",
            "SYNC_PLATFORM_CODE_SERVER_HOST": "127.0.0.1",
            "SYNC_PLATFORM_CODE_SERVER_PORT": str(free_port()),
            settings.WAREHOUSE_URL_ENV: stack.warehouse_url,
            settings.HOME_ENV: str(workdir / "platform_home"),
            settings.BACKUP_DIR_ENV: str(workdir / "backups"),
            settings.BACKUP_KEY_ENV: str(pyrage.x25519.Identity.generate()),
            settings.CADENCE_SPEEDUP_ENV: f"{speedup:g}",
            **simulator_environment(stack.simulator.url),
        }
        for key, value in settings_.items():
            stack.cli("config", "set", key, value, "--by", "soak")
        return stack

    def _database(self, name: str) -> str:
        engine = _admin(self.admin_url)
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.databases.append(name)
        return sa.make_url(self.admin_url).set(database=name).render_as_string(False)

    def cli(self, *args: str, timeout: float = 600) -> str:
        """A platform command (`sync-platform …`, `dagster …`) in the stack's environment;
        its output, or an error ending with what it printed last."""
        program = "dagster" if args[0] in ("job", "asset") else "sync-platform"
        done = subprocess.run(
            [str(BIN / program), *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            tail = (done.stdout + done.stderr).strip()[-2000:]
            raise RuntimeError(f"`{program} {' '.join(args[:4])} …` failed:\n{tail}")
        return done.stdout

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.processes[name] = process
        return process

    def launch(self) -> None:
        """The code server, the receiver, then the daemon once the code server answers."""
        host = self.env["SYNC_PLATFORM_CODE_SERVER_HOST"]
        port = self.env["SYNC_PLATFORM_CODE_SERVER_PORT"]
        server = self._start(
            "code_server",
            [str(BIN / "dagster"), "code-server", "start", "-m", "sync_platform.definitions",
             "-h", host, "-p", port],
        )  # fmt: skip
        receiver = self._start(
            "receiver",
            [str(BIN / "sync-platform"), "receiver", "--port", self.receiver_url.rsplit(":", 1)[1]],
        )  # fmt: skip

        def answers(target_port: str) -> bool:
            with socket.create_connection(("127.0.0.1", int(target_port)), timeout=1):
                return True

        _wait_for(
            "the code server", lambda: answers(port), STARTUP_SECONDS, lambda: server.poll() is None
        )
        _wait_for(
            "the receiver",
            lambda: httpx.get(f"{self.receiver_url}/healthz", timeout=2).status_code == 200,
            STARTUP_SECONDS,
            lambda: receiver.poll() is None,
        )
        self._start(
            "daemon",
            [str(BIN / "dagster-daemon"), "run", "-w",
             str(REPO / "deploy" / "production" / "workspace.yaml")],
        )  # fmt: skip

    def instance(self) -> dg.DagsterInstance:
        """Dagster's production storage, as the daemon sees it (close it after use). The
        instance reads its DAGSTER_PG_* variables while loading, from this process."""
        dagster_vars = {k: v for k, v in self.env.items() if k.startswith("DAGSTER_")}
        saved = {key: os.environ.get(key) for key in dagster_vars}
        os.environ.update(dagster_vars)
        try:
            return dg.DagsterInstance.from_config(dagster_vars["DAGSTER_HOME"])
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def dead(self) -> list[str]:
        """Processes of the stack that exited on their own."""
        return [name for name, process in self.processes.items() if process.poll() is not None]

    def sample_memory(self) -> dict[str, float]:
        """RSS in MiB of each long-running process with its long-running children (the code
        server's gRPC child); run and step workers, which come and go, are left out."""
        sizes = {}
        for name, process in self.processes.items():
            total = 0
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(process.pid)
                for member in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        command = " ".join(member.cmdline())
                        if member is root or not any(w in command for w in WORKERS):
                            total += member.memory_info().rss
            sizes[name] = round(total / 2**20, 1)
        return sizes

    def _stop(self, name: str, grace: float = 60) -> None:
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        except ProcessLookupError:
            pass

    def stop_daemon(self) -> None:
        self._stop("daemon")

    def stop(self) -> None:
        """Every process this stack started, the simulator, then the databases."""
        for name in ("daemon", "receiver", "code_server"):
            self._stop(name)
        if self.simulator is not None:
            self.simulator.stop()
        if self.keep:
            return
        engine = _admin(self.admin_url)
        with engine.connect() as connection:
            for name in self.databases:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
