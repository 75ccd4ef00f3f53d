"""Merge throughput vs raw bulk load and vs a peer loader (dlt), on PostgreSQL and SQLite.

For each dialect and size: raw COPY (Postgres) / executemany (SQLite) of the rows into an
empty table with the same primary key — the floor of any loader — then the platform's merge
(`engine.merge.merge_snapshot`, row hashing included) for an initial load, a re-sync with
1% changed + 0.1% new + 0.1% gone, and a no-change re-sync. On PostgreSQL, dlt merges the
same rows on the same key into its own schemas of the same database: arrow → parquet → ADBC
with either merge strategy (the faster is "dlt best") and its default, dicts → insert_values
(bench/dlt_peer.py); after every scenario each dlt table must hold the same rows as ours.
Every scenario runs in a fresh subprocess, so its peak RSS is its own.

    python -m bench.merge_bench [--sizes 100000,1000000] [--dialects postgresql,sqlite]
                                [--dlt-modes parquet,parquet_upsert,default] [--repeats 3]
                                [--write-docs]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow  # noqa: F401 - a library import, left out of the clock as dlt's are (steps have it preloaded)
import sqlalchemy as sa

from bench import dlt_peer
from bench.databases import server_version, throwaway_database
from bench.performance_doc import DOCS, write_section
from sync_platform.config import cached_source_config
from sync_platform.engine.hashing import row_hash_expr
from sync_platform.engine.merge import merge_snapshot
from sync_platform.warehouse import bulk
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.entity_tables import (
    FIRST_SYNCED_AT,
    ROW_HASH,
    SYNC_RUN_ID,
    SYNCED_AT,
    VERSION,
    entity_table,
)
from sync_platform.warehouse.schema import upgrade_warehouse

ENTITY = cached_source_config("dealer_feed").entities["dealer_stock"]
START, END = "<!-- merge-bench:start -->", "<!-- merge-bench:end -->"
SCENARIOS = ["copy", "initial", "resync_1pct", "no_change"]
TARGETS = {"initial": 0.9, "resync_1pct": 2.0, "no_change": 3.0}  # x COPY (rate vs COPY's)
DLT_TARGETS = {"initial": 1.7, "resync_1pct": 6.0}  # x dlt best (times faster than dlt)
MAKES = ["Toyota", "Mazda", "Ford", "Hyundai", "Kia", "Holden", "Nissan", "Subaru"]


def stock_rows(start: int, stop: int) -> pl.DataFrame:
    """Typed dealer_stock rows for ids `start`..`stop` (with their `id`), the same whatever
    the range: another bench can build any slice of a snapshot without the rest of it."""
    ids = pl.int_range(start, stop, eager=True).alias("id")
    return pl.DataFrame(ids).with_columns(
        ("STK" + pl.col("id").cast(pl.String).str.zfill(8)).alias("stock_number"),
        ("1HGCM8263" + pl.col("id").cast(pl.String).str.zfill(8)).alias("vin"),
        pl.lit(MAKES).list.get(pl.col("id") % len(MAKES)).alias("make"),
        ("Model " + (pl.col("id") % 37).cast(pl.String)).alias("model"),
        pl.when(pl.col("id") % 3 == 0).then(None).otherwise(pl.lit("Sport")).alias("variant"),
        (2005 + pl.col("id") % 21).alias("year"),
        (pl.col("id") * 7919 % 250_000).alias("odometer"),
        ((pl.col("id") * 104_729 % 8_500_000 + 500_000) / 100)
        .cast(pl.Decimal(12, 2))
        .alias("price"),
        pl.lit("available").alias("status"),
        pl.lit(["White", "Black", "Silver", "Blue"]).list.get(pl.col("id") % 4).alias("colour"),
        pl.lit("Sedan").alias("body"),
        pl.lit("Petrol").alias("fuel"),
        pl.lit("Automatic").alias("transmission"),
        pl.lit(["Parramatta", "Penrith"]).list.get(pl.col("id") % 2).alias("location"),
        pl.lit(datetime(2026, 11, 1, tzinfo=UTC)).dt.cast_time_unit("us").alias("updated_at"),
    )


def _gone(ids: pl.Expr) -> pl.Expr:
    """The keys the re-sync snapshots no longer have (0.1%)."""
    return ids % 1000 == 3


def snapshot(size: int, scenario: str) -> pl.DataFrame:
    """Deterministic typed dealer_stock rows, as the mapping step would produce them.

    `resync_1pct` and `no_change` are the initial rows with 1% repriced, 0.1% new keys
    appended and 0.1% of keys removed.
    """
    changed = scenario in ("resync_1pct", "no_change")
    extra = size // 1000 if changed else 0
    frame = stock_rows(0, size + extra)
    if changed:
        repriced = (pl.col("id") % 100 == 7) & (pl.col("id") < size)
        frame = frame.with_columns(
            pl.when(repriced).then(pl.col("price") + 1).otherwise(pl.col("price")).alias("price")
        ).filter(~_gone(pl.col("id")))
    return frame.drop("id")


def keys_seen(size: int, scenario: str) -> int:
    """Distinct keys of the snapshots up to `scenario`: what a table that keeps every key it
    ever loaded holds (a new key can be among the gone ones, and then is never seen)."""
    if scenario not in ("resync_1pct", "no_change"):
        return size
    extra = pl.int_range(size, size + size // 1000, eager=True)
    return size + int((~_gone(extra)).sum())


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_scenario(url: str, size: int, scenario: str) -> dict:
    """One timed scenario in this process; returns seconds, rows and peak RSS."""
    frame = snapshot(size, scenario)
    engine = create_warehouse_engine(url)
    table = entity_table(ENTITY)
    now = datetime.now(UTC)
    started = time.perf_counter()
    with engine.begin() as connection:
        if scenario == "copy":
            rows = frame.with_columns(
                pl.lit(0, dtype=pl.Int64).alias(ROW_HASH),
                pl.lit(now).alias(FIRST_SYNCED_AT),
                pl.lit(now).alias(SYNCED_AT),
                pl.lit(1, dtype=pl.Int64).alias(SYNC_RUN_ID),
                pl.lit(1, dtype=pl.Int32).alias(VERSION),
            )
            bulk.insert_frame(connection, "bench_copy", rows)
            outcome = None
        else:
            hashed = frame.with_columns(row_hash_expr(ENTITY.value_columns).alias(ROW_HASH))
            outcome = merge_snapshot(
                connection,
                table,
                ENTITY,
                hashed,
                complete_snapshot=True,
                sync_run_id=1,
                now=now,
                max_delete_share=1.0,
            )
    seconds = time.perf_counter() - started
    engine.dispose()
    result = {"seconds": seconds, "rows": frame.height, "peak_mb": _rss_mb()}
    if outcome is not None:
        result |= {
            "inserted": outcome.inserted,
            "updated": outcome.updated,
            "unchanged": outcome.unchanged,
            "soft_deleted": outcome.soft_deleted,
        }
    return result


def run_dlt_scenario(url: str, size: int, scenario: str, mode: str, workdir: str) -> dict:
    """The same scenario's rows merged by dlt in `mode`, timed in this process."""
    frame = snapshot(size, scenario)
    result = dlt_peer.run(frame, url, mode, ENTITY.table, list(ENTITY.key), workdir)
    return result | {"peak_mb": _rss_mb()}


def run_in_child(
    url: str, size: int, scenario: str, dlt_mode: str | None = None, dlt_dir: str = ""
) -> dict:
    """One scenario in a fresh process, so its peak RSS is its own (the reconcile bench
    loads its warehouse with the "initial" one); by dlt in `dlt_mode` if given."""
    if dlt_mode is None:
        command = ["--child", url, str(size), scenario]
        env = None
    else:
        command = ["--child-dlt", url, str(size), scenario, dlt_mode, dlt_dir]
        env = os.environ | dlt_peer.offline_env(dlt_dir)
    process = subprocess.run(
        [sys.executable, "-m", "bench.merge_bench", *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:1] + command[2:])} failed:\n{process.stderr}")
    return json.loads(process.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def fresh_warehouse(dialect: str, workdir: Path) -> Iterator[str]:
    """A new, migrated warehouse (its URL) plus an empty copy table with the same key,
    dropped afterwards (a SQLite file goes with the run's temp dir)."""
    with contextlib.ExitStack() as stack:
        if dialect == "sqlite":
            url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        else:
            url = stack.enter_context(throwaway_database("sync_platform_bench"))
        engine = create_warehouse_engine(url)
        upgrade_warehouse(engine, [ENTITY])
        copy_table = entity_table(ENTITY, sa.MetaData()).to_metadata(
            sa.MetaData(), name="bench_copy"
        )
        copy_table.create(engine)
        engine.dispose()
        yield url


def checkpoint(url: str) -> None:
    """Start each scenario with no dirty WAL from the previous one (fair to whoever runs second)."""
    if url.startswith("postgresql"):
        engine = create_warehouse_engine(url)
        with engine.connect() as connection:
            connection.exec_driver_sql("CHECKPOINT")
        engine.dispose()


def _empty_tables(url: str) -> None:
    engine = create_warehouse_engine(url)
    with engine.begin() as connection:
        for name in ("bench_copy", ENTITY.table):
            if url.startswith("postgresql"):
                connection.exec_driver_sql(f"TRUNCATE {name}")
            else:
                connection.execute(sa.delete(sa.table(name)))
    engine.dispose()


# Key and a few fields of every row the table holds (soft-deleted ones included: dlt's merge
# never sees a vanished key, so it keeps the row as it was, and so does ours, marked deleted).
FINGERPRINT = """
SELECT count(*), count(DISTINCT stock_number), coalesce(sum(hashtextextended(concat_ws('|',
    stock_number, vin, coalesce(variant, '-'), odometer, (price * 100)::bigint,
    extract(epoch FROM updated_at)::bigint), 0)::numeric), 0)
FROM {table}"""


def fingerprints(url: str, tables: list[str]) -> list[list[str]]:
    """FINGERPRINT of each table (zeros for one that does not exist)."""
    engine = create_warehouse_engine(url)
    prints = []
    with engine.connect() as connection:
        for name in tables:
            exists = connection.execute(sa.select(sa.func.to_regclass(name))).scalar()
            query = FINGERPRINT.format(table=name) if exists else "SELECT 0, 0, 0"
            prints.append([str(value) for value in connection.exec_driver_sql(query).one()])
    engine.dispose()
    return prints


def verify(url: str, size: int, scenario: str, modes: list[str]) -> dict[str, bool]:
    """Per dlt mode: does its table hold the same rows as ours, and as many as the snapshots
    so far had keys (so two loaders that both load nothing do not pass)?"""
    if not modes:
        return {}
    keys = keys_seen(size, scenario)
    tables = [ENTITY.table] + [f"{dlt_peer.dataset(mode)}.{ENTITY.table}" for mode in modes]
    ours, *peers = fingerprints(url, tables)
    verdicts = {}
    for mode, peer in zip(modes, peers, strict=True):
        verdicts[mode] = peer == ours and ours[:2] == [str(keys), str(keys)]
        if not verdicts[mode]:
            print(f"ROWS DIFFER after {scenario} at {size:,}: ours {ours}, dlt {mode} {peer}")
    return verdicts


def _load() -> dict:
    """The 1-minute load average as a run ends (other work on the machine moves the figures)."""
    return {"load": os.getloadavg()[0]}


def load_summary(results: list[dict]) -> str:
    loads = sorted(load for r in results for load in r["loads"])
    return (
        f"load average (1 min) as each run ended: median {loads[len(loads) // 2]:.1f}, "
        f"{loads[0]:.1f} to {loads[-1]:.1f}, on {os.cpu_count()} CPUs"
    )


def measure(
    dialect: str, size: int, workdir: Path, repeats: int, dlt_modes: list[str]
) -> list[dict]:
    """Each scenario `repeats` times (the median counts), every one in a fresh process; the
    loaders of a scenario take turns going first."""
    modes = dlt_modes if dialect == "postgresql" else []
    tools = ["ours", *(f"dlt_{mode}" for mode in modes)]
    runs: dict[tuple[str, str], list[dict]] = {("copy", "copy"): []}
    same: dict[tuple[str, str], bool] = {}
    with fresh_warehouse(dialect, workdir) as url:
        for repeat in range(repeats):
            _empty_tables(url)
            dlt_dir = workdir / f"dlt-{uuid.uuid4().hex[:6]}"
            if modes:
                engine = create_warehouse_engine(url)
                dlt_peer.reset(engine, modes)
                engine.dispose()
            checkpoint(url)
            runs["copy", "copy"].append(run_in_child(url, size, "copy") | _load())
            for scenario in SCENARIOS[1:]:
                turn = repeat % len(tools)
                for tool in tools[turn:] + tools[:turn]:
                    checkpoint(url)
                    mode = tool.removeprefix("dlt_") if tool != "ours" else None
                    result = run_in_child(url, size, scenario, mode, str(dlt_dir)) | _load()
                    runs.setdefault((scenario, tool), []).append(result)
                for mode, ok in verify(url, size, scenario, modes).items():
                    same[scenario, f"dlt_{mode}"] = same.get((scenario, f"dlt_{mode}"), True) and ok
            shutil.rmtree(dlt_dir, ignore_errors=True)
    results = []
    for (scenario, tool), attempts in runs.items():
        median = sorted(attempts, key=lambda r: r["seconds"])[len(attempts) // 2]
        peak = max(r["peak_mb"] for r in attempts)
        loads = [r["load"] for r in attempts]
        results.append(
            {"dialect": dialect, "size": size, "scenario": scenario, "tool": tool, **median}
            | {"peak_mb": peak, "loads": loads}
            | ({"same_rows": same[scenario, tool]} if (scenario, tool) in same else {})
        )
    return results


def machine() -> str:
    pg_version = server_version()
    import sqlite3

    peers = ""
    for name in ("dlt", "adbc-driver-postgresql"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            peers += f", {name} {importlib.metadata.version(name)}"
    return (
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"polars {pl.__version__}, PostgreSQL {pg_version}, SQLite {sqlite3.sqlite_version}"
        f"{peers}"
    )


def _verdict(ratio: float, target: float | None, label: str) -> list[str]:
    if target is None:
        return []
    # A miss shows the ratio to three places: rounded to two, 0.896 reads as 0.90 beside it.
    return [f"{label} ≥ {target}: " + ("met" if ratio >= target else f"MISSED ({ratio:.3f})")]


def _seconds(run: dict | None) -> str:
    return "-" if run is None else f"{run['seconds']:.2f}"


def _faster(ours: dict, peer: dict | None) -> str:
    """How many times faster than `peer` ours was on the same rows."""
    return "-" if peer is None else f"{peer['seconds'] / ours['seconds']:.1f}"


def _strategy(run: dict) -> str:
    return dlt_peer.MODES[run["tool"].removeprefix("dlt_")]["strategy"]


def table(results: list[dict]) -> str:
    """One line per dialect, size and scenario: ours, COPY and dlt side by side."""
    lines = [
        "| dialect | rows | scenario | ours s | rows/s | COPY s | x COPY | dlt best s "
        "| dlt default s | x dlt best | x dlt default | dlt rows = ours "
        "| peak MB ours / dlt best / default | target |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
        "| ---: | --- |",
    ]
    runs = {(r["dialect"], r["size"], r["scenario"], r["tool"]): r for r in results}
    for dialect, size, scenario, tool in runs:
        if tool != "ours":
            continue
        ours = runs[dialect, size, scenario, "ours"]
        copy = runs[dialect, size, "copy", "copy"]
        fast = [runs.get((dialect, size, scenario, f"dlt_{mode}")) for mode in dlt_peer.BEST_OF]
        best = min((run for run in fast if run), key=lambda run: run["seconds"], default=None)
        default = runs.get((dialect, size, scenario, "dlt_default"))
        peers = [run for key, run in runs.items() if key[:3] == (dialect, size, scenario)]
        peers = [run for run in peers if run["tool"].startswith("dlt_")]
        rate = ours["rows"] / ours["seconds"]
        x_copy = rate / (copy["rows"] / copy["seconds"])
        targets = _verdict(x_copy, TARGETS.get(scenario), "x COPY")
        if best is not None:
            targets += _verdict(
                best["seconds"] / ours["seconds"], DLT_TARGETS.get(scenario), "x dlt"
            )
        differ = [run["tool"].removeprefix("dlt_") for run in peers if not run["same_rows"]]
        checked = "-" if not peers else "DIFFERENT: " + ", ".join(differ) if differ else "same"
        best_cell = _seconds(best) + (f" ({_strategy(best)})" if best else "")
        peaks = " / ".join(
            "-" if run is None else f"{run['peak_mb']:.0f}" for run in (ours, best, default)
        )
        lines.append(
            f"| {dialect} | {size:,} | {scenario} | {ours['seconds']:.2f} | {rate:,.0f} "
            f"| {copy['seconds']:.2f} | {x_copy:.2f} | {best_cell} | {_seconds(default)} "
            f"| {_faster(ours, best)} | {_faster(ours, default)} | {checked} "
            f"| {peaks} | {'; '.join(targets)} |"
        )
    return "\n".join(lines)


def write_docs(results: list[dict], repeats: int) -> None:
    section = f"""{START}
## Merge throughput (`make bench`, {date.today().isoformat()})

Machine: {machine()}; {load_summary(results)}.

{table(results)}

How to read it: *rows/s* is snapshot rows per second of wall-clock time for the whole
scenario in one transaction (row hashing, reading the target's keys and hashes, the diff,
the writes and the commit). *x COPY* divides by the raw-load rate of the same rows in the
same run — `COPY … FROM STDIN` into an empty table with the same primary key on
PostgreSQL, the driver's `executemany` on SQLite — the floor any loader stands on.
*dlt best s* and *dlt default s* are the peer loader, [dlt](https://dlthub.com), merging
the same snapshot rows on the same key (`write_disposition="merge"`,
`primary_key="stock_number"`) into its own schemas of the same database. *Best* hands it
one pyarrow table with `loader_file_format="parquet"`, which its postgres destination loads
through the ADBC driver (the fast path its documentation recommends); it runs with both of
dlt's merge strategies, `delete-insert` (its default) and `upsert` (`MERGE INTO`), and the
faster one's median counts (named in brackets). *Default* hands it plain Python dicts and
sets nothing else: its normaliser, `insert_values` statements, `delete-insert`. dlt's time is
its `pipeline.run` (extract, normalize, load into its staging schema and the merge SQL) to
its return; the items are built from the frame and the pipeline object created before the
clock starts, and library imports are left out for both tools. *x dlt* is dlt's time over
ours on the same rows: how many times faster the merge is. After every scenario each dlt
table must hold exactly our rows (row count, key count, and a checksum over key, VIN,
variant, odometer, price and `updated_at` of every key ever loaded, since dlt's merge keeps
a vanished key's row as it was where ours soft-deletes it); *dlt rows = ours* says whether
each did, over all runs. Ours also does work dlt's merge does not: it soft-deletes the 0.1%
of keys that vanished and keeps its audit columns (row hash, first/last synced, version).
Each scenario runs {repeats} times in a fresh process after a `CHECKPOINT` (so no run
pays for the previous one's WAL), the loaders of a scenario taking turns to go first; the
table shows the median time and the highest peak. *Peak MB* is the scenario process's peak
RSS, including generating the snapshot frame (and, for dlt, its items).
Targets are for PostgreSQL: against COPY initial ≥ 0.9x, 1% re-sync ≥ 2x, no change ≥ 3x,
peak ≤ 1.5 GB at 1M rows; against dlt's best mode, initial ≥ 1.7x and 1% re-sync ≥ 6x
faster. SQLite figures are reported for the embedded default (dlt runs on PostgreSQL only).
{END}"""
    write_section(section, START, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dialects", default="postgresql,sqlite")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario (median)")
    parser.add_argument(
        "--dlt-modes",
        default=",".join(dlt_peer.MODES),
        help=f"dlt's modes beside ours on PostgreSQL, of {', '.join(dlt_peer.MODES)} ('none')",
    )
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--child", nargs=3, metavar=("URL", "SIZE", "SCENARIO"), help=argparse.SUPPRESS
    )
    parser.add_argument("--child-dlt", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, size, scenario = args.child
        print(json.dumps(run_scenario(url, int(size), scenario)))
        return
    if args.child_dlt:
        url, size, scenario, mode, workdir = args.child_dlt
        print(json.dumps(run_dlt_scenario(url, int(size), scenario, mode, workdir)))
        return
    dlt_modes = [] if args.dlt_modes in ("", "none") else args.dlt_modes.split(",")
    if unknown := set(dlt_modes) - set(dlt_peer.MODES):
        parser.error(f"unknown dlt modes {sorted(unknown)}; known: {sorted(dlt_peer.MODES)}")
    if dlt_modes and importlib.util.find_spec("dlt") is None:
        parser.error(
            "dlt is not installed: it is in the `bench` dependency group, which `make bench` "
            "installs (uv sync --group bench --inexact); or pass --dlt-modes none"
        )
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for dialect in args.dialects.split(","):
            for size in (int(s) for s in args.sizes.split(",")):
                results += measure(dialect, size, Path(workdir), args.repeats, dlt_modes)
                print(table(results), "\n", flush=True)
    print(f"{machine()}; {load_summary(results)}")
    if any(not r.get("same_rows", True) for r in results):
        sys.exit("dlt's tables did not hold the same rows as ours (see above); docs not written")
    if args.write_docs:
        write_docs(results, args.repeats)
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
