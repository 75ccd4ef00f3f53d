"""What a user waits for around the syncs: loading the code location, and whole `dagster job
execute` runs of `dealer_sync` and `full_sync` at the demo's size against the simulator, beside
the entities' own sync seconds from the audit (`sync_runs`). Figures, not a test.

Each run is the command an operator types, in a fresh process, against a throwaway
DAGSTER_HOME (the repository's dagster.yaml) and an embedded SQLite warehouse. The first
`full_sync` loads everything; the second re-reads unchanged sources (the steady state of the
15-minute schedule). `python -m bench.orchestration_bench [--repeats N] [--write-docs]`.

Each figure is taken twice: as shipped, and as the platform ran before issue 17 (every step
a fresh `spawn`ed process, and no compiled bytecode to read, as where PYTHONDONTWRITEBYTECODE
is set and nothing compiled it ahead), so the table shows what the forkserver and the
ahead-of-time bytecode buy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.performance_doc import DOCS, write_section
from demo.__main__ import demo_environment, reset_sources
from sync_platform.config import all_source_configs
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.platform_tables import sync_runs
from sync_platform.warehouse.schema import upgrade_warehouse
from sync_platform_simulator.server import SimulatorServer

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START, END = "<!-- orchestration-bench:start -->", "<!-- orchestration-bench:end -->"
LOAD_DEFINITIONS = (
    "from sync_platform.definitions import defs; defs().get_repository_def().get_all_jobs()"
)
TARGETS = {"definitions": 2.0, "dealer_sync": 10.0, "full_sync": 20.0}
SPAWN = {"execution": {"config": {"multiprocess": {"start_method": {"spawn": {}}}}}}


def _seconds(command: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode:
        output = (result.stdout + result.stderr)[-3000:]
        raise SystemExit(f"{' '.join(command[:7])} failed:\n{output}")
    return elapsed


def _sync_seconds(engine: sa.Engine, after_id: int) -> tuple[float, int]:
    """The entities' own sync seconds (started → finished in the audit) since `after_id`, and
    how many syncs that was."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(sync_runs.c.started_at, sync_runs.c.finished_at).where(
                sync_runs.c.id > after_id, sync_runs.c.finished_at.is_not(None)
            )
        ).all()
    return sum((f - s).total_seconds() for s, f in rows), len(rows)


def _last_id(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        latest = sa.select(sa.func.coalesce(sa.func.max(sync_runs.c.id), 0))
        return connection.execute(latest).scalar_one()


def measure(repeats: int, before: bool) -> list[dict]:
    """The figures as shipped, or (`before`) with spawned steps and no bytecode to read."""
    results = []
    python = [sys.executable, "-c", LOAD_DEFINITIONS]
    no_bytecode = tempfile.mkdtemp(prefix="orchestration-bench-no-pyc-")
    # before: an empty bytecode cache that nothing is written to
    variant = {"PYTHONPYCACHEPREFIX": no_bytecode, "PYTHONDONTWRITEBYTECODE": "1"} if before else {}
    loads = [_seconds(python, dict(os.environ) | variant) for _ in range(repeats)]
    results.append({"what": "definitions", "label": "load the code location "
                    "(`import sync_platform.definitions`, build the Definitions)",
                    "seconds": statistics.median(loads), "syncs": None})  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="orchestration-bench-") as tmp:
        home, dagster_home = Path(tmp) / "home", Path(tmp) / "dagster_home"
        home.mkdir()
        dagster_home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        url = f"sqlite:///{home / 'warehouse.db'}"
        engine = create_warehouse_engine(url)
        upgrade_warehouse(engine, [e for s in all_source_configs() for e in s.entities.values()])
        with SimulatorServer() as simulator, httpx.Client(base_url=simulator.url) as control:
            reset_sources(control, seed=42, stock=300, leads=120)
            env = (
                demo_environment(url, simulator.url, home)
                | variant
                | {
                    "DAGSTER_HOME": str(dagster_home),
                    "SYNC_PLATFORM_HOME": str(home),
                }
            )
            for job, label in (
                ("dealer_sync", "first load (300 vehicles, 120 leads)"),
                ("dealer_sync", "nothing changed"),
                ("full_sync", "first load"),
                ("full_sync", "nothing changed"),
            ):
                label = f"`dagster job execute -j {job}`, {label}"
                after_id = _last_id(engine)
                command = [str(BIN / "dagster"), "job", "execute", "-m",
                           "sync_platform.definitions", "-j", job]  # fmt: skip
                if before:
                    spawn = Path(tmp) / "spawn.yaml"  # JSON is YAML
                    spawn.write_text(json.dumps(SPAWN))
                    command += ["-c", str(spawn)]
                seconds = _seconds(command, env)
                own, syncs = _sync_seconds(engine, after_id)
                results.append({"what": job, "label": label, "seconds": seconds,
                                "own": own, "syncs": syncs})  # fmt: skip
                shown = "before" if before else "shipped"
                print(f"{shown}: {label}: {seconds:.1f} s (syncs' own {own:.1f} s)", flush=True)
        engine.dispose()
    shutil.rmtree(no_bytecode, ignore_errors=True)
    return results


def table(shipped: list[dict], before: list[dict]) -> str:
    lines = ["| what | before | as shipped | syncs' own seconds | target | met |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for r, old in zip(shipped, before, strict=True):
        target = TARGETS.get(r["what"])
        own = "" if r["syncs"] is None else f"{r['own']:.1f} s ({r['syncs']} syncs)"
        met = "" if target is None else ("yes" if r["seconds"] <= target else "no")
        shown = "" if target is None else f"≤ {target:.0f} s"
        lines.append(
            f"| {r['label']} | {old['seconds']:.1f} s | {r['seconds']:.1f} s | {own} | "
            f"{shown} | {met} |"
        )
    return "\n".join(lines)


def write_docs(shipped: list[dict], before: list[dict], repeats: int, loads: str) -> None:
    section = f"""{START}
## Orchestration overhead (`python -m bench.orchestration_bench`, {date.today().isoformat()})

Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()};
1-minute load average {loads}. The code location's load is the median of {repeats} fresh
processes; each job row is one `dagster job execute` against the simulator at the demo's
size (300 vehicles, 120 leads, 40 products, 100 variants, 60 customers, 80 sellers), on the
embedded default (SQLite warehouse, SQLite Dagster storage). *Before*: every step a freshly
`spawn`ed process with no compiled bytecode to read (how every run went before issue 17 where
PYTHONDONTWRITEBYTECODE is set, as on this machine); *as shipped*: `make env` compiles the
bytecode ahead and steps are forked from a forkserver that built the definitions once
(`orchestration/executor.py`).

{table(shipped, before)}
{END}"""
    write_section(section, START, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="loads of the code location")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    before = measure(args.repeats, before=True)
    shipped = measure(args.repeats, before=False)
    loads = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    print()
    print(table(shipped, before))
    if args.write_docs:
        write_docs(shipped, before, args.repeats, loads)
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
