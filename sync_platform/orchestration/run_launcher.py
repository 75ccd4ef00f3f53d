"""Dagster's default run launcher, plus a run worker health check by process id.

A run worker that dies (kill -9, the OOM killer) never reports its end: its run stays
STARTED and keeps its pool slots, so every later run of its entities waits. Dagster's run
monitoring fails such a run only if the launcher can say the worker is gone, and the default
launcher cannot. This one reads the worker's pid from the run's own events and looks for that
process, which is only meaningful where the daemon sees the workers' processes: `same_host`.

The launcher interface (`CheckRunHealthResult`, `WorkerStatus`) has no public spelling, hence
the private imports.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Self

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._serdes import ConfigurableClassData

# The pid event comes first in a run (the run worker's "Started process for run", or the
# executor's "parent process" for `dagster job execute`); this many is plenty.
ENGINE_EVENTS_SCANNED = 100
# /proc/stat's boot time is whole seconds and clocks slew: a process counts as started after
# the pid event only past this margin.
CLOCK_MARGIN_SECONDS = 2.0
PROC = Path("/proc")


class PidCheckingRunLauncher(dg.DefaultRunLauncher):
    """Launches runs like `DefaultRunLauncher` (through the code server) and, with
    `same_host`, tells run monitoring when a run's worker process is gone."""

    def __init__(self, inst_data: ConfigurableClassData | None = None, same_host: bool = False):
        self.same_host = same_host
        super().__init__(inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict[str, dg.Field]:
        return {
            "same_host": dg.Field(
                bool,
                is_required=False,
                default_value=False,
                description=(
                    "The daemon sees the run workers' processes (one host, one pid namespace: "
                    "the daemon, the code server and anyone running `dagster job execute`). "
                    "Only then can a missing process mean a dead run worker; when false, run "
                    "monitoring never asks this launcher about workers."
                ),
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        return cls(inst_data=inst_data, same_host=config_value.get("same_host", False))

    @property
    def supports_check_run_worker_health(self) -> bool:
        # Run monitoring fails a run on any answer but RUNNING or SUCCESS, so a launcher that
        # cannot see the workers must not be asked at all.
        return self.same_host

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        """RUNNING unless the worker is known dead: FAILED only when its process is gone from
        a host and pid namespace this daemon sees. "Cannot tell" is RUNNING too (see above),
        which leaves the run as the default launcher would."""
        if not self.same_host:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "same_host is false")
        if not (PROC / "self" / "stat").exists():
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no /proc here: cannot tell")
        elsewhere = _code_server_elsewhere(run)
        if elsewhere:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING,
                f"cannot tell: the run worker runs beside the code server on {elsewhere}",
            )
        found = self._worker_pid(run.run_id)
        if found is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker pid recorded yet")
        pid, recorded_at = found
        started = process_start_time(pid)
        if started is None:
            return CheckRunHealthResult(WorkerStatus.FAILED, _gone(run, pid, "is gone"))
        if started > recorded_at + CLOCK_MARGIN_SECONDS:
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                _gone(run, pid, "is gone (its pid now belongs to a newer process)"),
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive")

    def _worker_pid(self, run_id: str) -> tuple[int, float] | None:
        """The run worker's pid and when it was recorded, from the run's first engine event
        that names one."""
        records = self._instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=ENGINE_EVENTS_SCANNED
        ).records
        for record in records:
            event = record.event_log_entry.dagster_event
            metadata = getattr(event.event_specific_data, "metadata", None) or {}
            if "pid" in metadata and str(metadata["pid"].value).isdigit():
                return int(metadata["pid"].value), record.event_log_entry.timestamp
        return None


def _gone(run: dg.DagsterRun, pid: int, what: str) -> str:
    retried = (
        ", and the run retry re-executes it unless its retries are used up"
        if run.remote_job_origin is not None
        else " (a run started with `dagster job execute` is not retried: run it again)"
    )
    return (
        f"the run worker (pid {pid}) {what} — killed or out of memory; the run is marked "
        f"failed so its pool slots are freed{retried}"
    )


def process_start_time(pid: int) -> float | None:
    """When the live process `pid` started (epoch seconds), or None if there is none. A zombie
    (killed, not yet reaped by its parent) counts as none."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Fields after the command name, which may itself hold spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")


@cache
def _boot_time() -> float:
    for line in (PROC / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("/proc/stat has no btime line")


def _code_server_elsewhere(run: dg.DagsterRun) -> str | None:
    """The host of the code server that started this run's worker, if that is not this
    machine (Dagster records it on launched runs; a `dagster job execute` run has none)."""
    grpc_info = run.tags.get(GRPC_INFO_TAG)
    if not grpc_info:
        return None
    host = json.loads(grpc_info).get("host")
    if not host or _is_this_machine(host):
        return None
    return host


def _is_this_machine(host: str) -> bool:
    """Whether `host` names this machine: a loopback address, or one of its own addresses."""
    try:
        return ipaddress.ip_address(host).is_loopback or host in _own_addresses()
    except ValueError:  # a name, not an address
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:  # cannot resolve it now: not known to be here
        return False
    own = _own_addresses()
    return any(ipaddress.ip_address(a).is_loopback or a in own for a in addresses)


def _own_addresses() -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        return set()
