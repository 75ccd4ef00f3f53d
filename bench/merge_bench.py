"""Merge throughput vs raw bulk load, on PostgreSQL and SQLite.

For each dialect and size: raw COPY (Postgres) / executemany (SQLite) of the rows into an
empty table with the same primary key — the floor of any loader — then the platform's merge
(`engine.merge.merge_snapshot`, row hashing included) for an initial load, a re-sync with
1% changed + 0.1% new + 0.1% gone, and a no-change re-sync. Every scenario runs in a fresh
subprocess, so its peak RSS is its own.

    python -m bench.merge_bench [--sizes 100000,1000000] [--dialects postgresql,sqlite]
                                [--write-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import sqlalchemy as sa

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
PG_URL_ENV = "SYNC_PLATFORM_BENCH_PG_URL"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
START, END = "<!-- merge-bench:start -->", "<!-- merge-bench:end -->"
SCENARIOS = ["copy", "initial", "resync_1pct", "no_change"]
TARGETS = {"initial": 0.9, "resync_1pct": 2.0, "no_change": 3.0}
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
        ).filter(pl.col("id") % 1000 != 3)
    return frame.drop("id")


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


def run_in_child(url: str, size: int, scenario: str) -> dict:
    """One scenario in a fresh process, so its peak RSS is its own (the reconcile bench
    loads its warehouse with the "initial" one)."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.merge_bench", "--child", url, str(size), scenario],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def fresh_warehouse(dialect: str, workdir: Path) -> tuple[str, callable]:
    """A new, migrated warehouse plus an empty copy table with the same key; and its cleanup."""
    if dialect == "sqlite":
        url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        cleanup = lambda: None  # noqa: E731 - the temp dir goes with the run
    else:
        admin_url = os.environ.get(PG_URL_ENV, "postgresql://postgres@127.0.0.1:5432/postgres")
        name = f"sync_platform_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(
            sa.make_url(admin_url).set(drivername="postgresql+psycopg"),
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)

        def cleanup() -> None:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()

    engine = create_warehouse_engine(url)
    upgrade_warehouse(engine, [ENTITY])
    copy_table = entity_table(ENTITY, sa.MetaData()).to_metadata(sa.MetaData(), name="bench_copy")
    copy_table.create(engine)
    engine.dispose()
    return url, cleanup


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


def measure(dialect: str, size: int, workdir: Path, repeats: int) -> list[dict]:
    """Each scenario `repeats` times (the median counts), every one in a fresh process."""
    url, cleanup = fresh_warehouse(dialect, workdir)
    runs: dict[str, list[dict]] = {scenario: [] for scenario in SCENARIOS}
    try:
        for _ in range(repeats):
            _empty_tables(url)
            for scenario in SCENARIOS:
                checkpoint(url)
                runs[scenario].append(run_in_child(url, size, scenario))
    finally:
        cleanup()
    results = []
    for scenario, attempts in runs.items():
        median = sorted(attempts, key=lambda r: r["seconds"])[len(attempts) // 2]
        peak = max(r["peak_mb"] for r in attempts)
        results.append(
            {"dialect": dialect, "size": size, "scenario": scenario, **median, "peak_mb": peak}
        )
    return results


def machine() -> str:
    pg_version = "?"
    try:
        url = os.environ.get(PG_URL_ENV, "postgresql://postgres@127.0.0.1:5432/postgres")
        engine = create_warehouse_engine(url)
        with engine.connect() as connection:
            pg_version = connection.execute(sa.text("SHOW server_version")).scalar()
        engine.dispose()
    except sa.exc.OperationalError:
        pass
    import sqlite3

    return (
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"polars {pl.__version__}, PostgreSQL {pg_version}, SQLite {sqlite3.sqlite_version}"
    )


def table(results: list[dict]) -> str:
    lines = [
        "| dialect | rows | scenario | seconds | rows/s | x COPY | peak MB | target |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    baseline = {
        (r["dialect"], r["size"]): r["rows"] / r["seconds"]
        for r in results
        if r["scenario"] == "copy"
    }
    for r in results:
        rate = r["rows"] / r["seconds"]
        ratio = rate / baseline[(r["dialect"], r["size"])]
        target = TARGETS.get(r["scenario"])
        verdict = (
            "" if target is None else (f"≥ {target}x: " + ("met" if ratio >= target else "MISSED"))
        )
        lines.append(
            f"| {r['dialect']} | {r['size']:,} | {r['scenario']} | {r['seconds']:.2f} | "
            f"{rate:,.0f} | {ratio:.2f} | {r['peak_mb']:.0f} | {verdict} |"
        )
    return "\n".join(lines)


def write_docs(results: list[dict], repeats: int) -> None:
    section = f"""{START}
## Merge throughput (`make bench`, {date.today().isoformat()})

Machine: {machine()}.

{table(results)}

How to read it: *rows/s* is snapshot rows per second of wall-clock time for the whole
scenario in one transaction (row hashing, reading the target's keys and hashes, the diff,
the writes and the commit). *x COPY* divides by the raw-load rate of the same rows in the
same run — `COPY … FROM STDIN` into an empty table with the same primary key on
PostgreSQL, the driver's `executemany` on SQLite — the floor any loader stands on.
Each scenario runs {repeats} times in a fresh process after a `CHECKPOINT` (so no run
pays for the previous one's WAL); the table shows the median time and the highest peak.
*Peak MB* is the scenario process's peak RSS, including generating the snapshot frame.
Targets are for PostgreSQL (initial ≥ 0.9x, 1% re-sync ≥ 2x, no change ≥ 3x, peak ≤ 1.5 GB
at 1M rows); SQLite figures are reported for the embedded default.
{END}"""
    text = DOCS.read_text() if DOCS.exists() else "# Performance\n\n"
    if START in text:
        before, rest = text.split(START, 1)
        text = before + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOCS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dialects", default="postgresql,sqlite")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario (median)")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--child", nargs=3, metavar=("URL", "SIZE", "SCENARIO"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        url, size, scenario = args.child
        print(json.dumps(run_scenario(url, int(size), scenario)))
        return
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for dialect in args.dialects.split(","):
            for size in (int(s) for s in args.sizes.split(",")):
                results += measure(dialect, size, Path(workdir), args.repeats)
                print(table(results), "\n", flush=True)
    print(machine())
    if args.write_docs:
        write_docs(results, args.repeats)
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
