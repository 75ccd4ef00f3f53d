"""Backup, verify and restore of a 1M-row warehouse, on PostgreSQL and SQLite.

Fills `dealer_stock` with deterministic rows (the merge bench's generator, bulk COPY), then
times the platform's own operations, age encryption included: `create_backup` (dump +
encrypt + store + per-table checksums), `verify_backup` (checksum + decrypt + restore into a
throwaway database + compare every table) and `restore_backup` into a new database. Peak RSS
of the Python process during each step shows memory stays flat (the dump streams).

    python -m bench.backup_bench [--rows 1000000] [--dialects postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyrage

from bench.databases import throwaway_database
from bench.merge_bench import ENTITY, snapshot
from sync_platform.backups import service
from sync_platform.backups.restore import drop_pg_database
from sync_platform.warehouse import bulk
from sync_platform.warehouse.connection import create_warehouse_engine, normalize_url
from sync_platform.warehouse.entity_tables import (
    FIRST_SYNCED_AT,
    ROW_HASH,
    SYNC_RUN_ID,
    SYNCED_AT,
    VERSION,
)
from sync_platform.warehouse.schema import upgrade_warehouse


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill_warehouse(url: str, rows: int) -> None:
    """Migrate the warehouse at `url` and load `rows` dealer_stock rows into it."""
    engine = create_warehouse_engine(url)
    upgrade_warehouse(engine, [ENTITY])
    now = datetime.now(UTC)
    frame = snapshot(rows, "initial").with_columns(
        pl.lit(0, dtype=pl.Int64).alias(ROW_HASH),
        pl.lit(now).alias(FIRST_SYNCED_AT),
        pl.lit(now).alias(SYNCED_AT),
        pl.lit(None, dtype=pl.Int64).alias(SYNC_RUN_ID),
        pl.lit(1, dtype=pl.Int32).alias(VERSION),
    )
    with engine.begin() as connection:
        bulk.insert_frame(connection, ENTITY.table, frame)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.commit()
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE"
            )
    engine.dispose()


def database_bytes(url: str) -> int:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return Path(parsed.database).stat().st_size
    engine = create_warehouse_engine(url)
    with engine.connect() as connection:
        size = connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    engine.dispose()
    return int(size)


def measure(dialect: str, rows: int) -> dict:
    with (
        tempfile.TemporaryDirectory(prefix="backup-bench-", dir=".") as scratch,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(scratch).resolve()
        if dialect == "sqlite":
            url = f"sqlite:///{workdir / 'warehouse.db'}"
        else:
            url = stack.enter_context(throwaway_database("sync_platform_backup_bench"))
        started = time.perf_counter()
        fill_warehouse(url, rows)
        fill_seconds = time.perf_counter() - started
        config = service.BackupConfig.from_values(
            workdir / "backups", str(pyrage.x25519.Identity.generate())
        )
        result = {"dialect": dialect, "rows": rows, "fill_seconds": fill_seconds}
        result["database_mb"] = database_bytes(url) / 1e6
        rss = _rss_mb()
        started = time.perf_counter()
        manifest = service.create_backup(url, config)
        result["backup_seconds"] = time.perf_counter() - started
        result["backup_mb"] = manifest.size_bytes / 1e6
        result["backup_rss_growth_mb"] = _rss_mb() - rss
        started = time.perf_counter()
        verified = service.verify_backup(url, config, manifest.id)
        result["verify_seconds"] = time.perf_counter() - started
        result["verify_restore_seconds"] = verified.restore_seconds
        started = time.perf_counter()
        restored = service.restore_backup(url, config, manifest.id)
        result["restore_seconds"] = time.perf_counter() - started
        result["restore_load_seconds"] = restored.restore_seconds
        result["restore_check_seconds"] = restored.verify_seconds
        result["rss_mb"] = _rss_mb()
        if dialect == "postgresql":
            target = normalize_url(url).set(database=normalize_url(restored.target).database)
            drop_pg_database(target.render_as_string(hide_password=False))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dialects", default="postgresql,sqlite")
    args = parser.parse_args()
    print(f"# backup bench, {platform.platform()}, {os.cpu_count()} cores, {args.rows:,} rows")
    header = (
        "| dialect | database MB | backup (encrypted) MB | backup s | verify s (of which "
        "restore) | restore to new db s (load + check) | peak RSS MB |"
    )
    print(header)
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for dialect in args.dialects.split(","):
        r = measure(dialect, args.rows)
        print(
            f"| {dialect} | {r['database_mb']:.0f} | {r['backup_mb']:.1f} | "
            f"{r['backup_seconds']:.1f} | {r['verify_seconds']:.1f} "
            f"({r['verify_restore_seconds']:.1f}) | {r['restore_seconds']:.1f} "
            f"({r['restore_load_seconds']:.1f} + {r['restore_check_seconds']:.1f}) | "
            f"{r['rss_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
