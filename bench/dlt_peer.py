"""The peer loader for `bench.merge_bench`: dlt (https://dlthub.com) merging the same rows.

dlt comes from the `bench` dependency group (`make bench` installs it; `make env` does not),
so nothing here imports it at module level. It runs offline: telemetry off, no config or
secrets read from the working directory, its pipeline state in the bench's temp directory.

Every mode uses `write_disposition="merge"` with the entity's key as `primary_key`, and
loads into a staging dataset first; the merge strategy then is `delete-insert` (dlt's
default: delete the target rows whose key is staged, insert the staged rows) or `upsert`
(one `MERGE INTO … WHEN MATCHED THEN UPDATE … WHEN NOT MATCHED THEN INSERT`):

- `parquet`, `parquet_upsert`: the rows as one pyarrow table, `loader_file_format="parquet"`,
  which dlt's postgres destination loads through the ADBC driver (adbc-driver-postgresql),
  its documented fast path ("Fast loading with Arrow tables and parquet"); the faster of the
  two strategies is dlt's best mode in the bench's table;
- `default`: the rows as plain Python dicts and nothing else set, so dlt's own normaliser,
  the destination's preferred format (`insert_values`) and its default strategy
  (`delete-insert` on postgres).

(Arrow tables through `loader_file_format="csv"`, COPY via psycopg2, the other fast path
the docs name, was slower than parquet here and is left out.)
"""

from __future__ import annotations

import importlib
import os
import time

import polars as pl
import sqlalchemy as sa

MODES = {
    "parquet": {"items": "arrow", "file_format": "parquet", "strategy": "delete-insert"},
    "parquet_upsert": {"items": "arrow", "file_format": "parquet", "strategy": "upsert"},
    "default": {"items": "dicts", "file_format": None, "strategy": None},
}
BEST_OF = ("parquet", "parquet_upsert")  # dlt's best mode: the faster of these
# The format dlt must have used for the entity table's rows when none is set, or the
# figures are not the mode's (dlt drops parquet when it cannot load the ADBC driver).
DEFAULT_FORMAT = "insert_values"

# Modules dlt imports lazily during its first `pipeline.run` in a process. They are imported
# before the clock starts, as the bench's own child imports polars, SQLAlchemy and psycopg
# before its clock: library import time is left out for both.
_LAZY_IMPORTS = (
    "pandas",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "pyarrow.compute",
    "adbc_driver_manager.dbapi",
    "adbc_driver_postgresql.dbapi",
    "psycopg2",
    "dlt.common.libs.pyarrow",
    "dlt.destinations.impl.postgres.postgres",
    "dlt.extract",
    "dlt.normalize",
    "dlt.load",
)


def dataset(mode: str) -> str:
    """The PostgreSQL schema (dlt dataset) a mode loads into, in the bench's database."""
    return f"dlt_{mode}"


def offline_env(workdir: str) -> dict[str, str]:
    """Environment for a dlt process: no telemetry, config/state only under `workdir`."""
    return {
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DLT_DATA_DIR": workdir,
        "DLT_PROJECT_DIR": workdir,
    }


def reset(engine: sa.Engine, modes: list[str]) -> None:
    """Drop the modes' datasets (and dlt's staging datasets beside them)."""
    with engine.begin() as connection:
        for mode in modes:
            for schema in (dataset(mode), f"{dataset(mode)}_staging"):
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def credentials(url: str) -> str:
    """The bench's URL as dlt wants it: plain `postgresql://` and a password. dlt requires
    one; the bench's default role uses trust auth, where libpq's password is ignored."""
    parsed = sa.make_url(url).set(drivername="postgresql")
    if parsed.password is None:
        parsed = parsed.set(password="unused")
    return parsed.render_as_string(hide_password=False)


def run(frame: pl.DataFrame, url: str, mode: str, table: str, key: list[str], workdir: str) -> dict:
    """One timed `pipeline.run` of `frame` in `mode`; returns seconds and the formats used.

    The rows are turned into the mode's items (a pyarrow table, or dicts) and the pipeline
    object is created before the clock starts; the clock covers `pipeline.run`, that is
    extract, normalize and load (staging load and the merge SQL), to its return.
    """
    os.environ.update(offline_env(workdir))
    import dlt

    for module in _LAZY_IMPORTS:
        importlib.import_module(module)

    spec = MODES[mode]
    items = frame.to_arrow() if spec["items"] == "arrow" else frame.to_dicts()
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{mode}",
        destination=dlt.destinations.postgres(credentials(url)),
        dataset_name=dataset(mode),
        pipelines_dir=workdir,
    )
    options = {"loader_file_format": spec["file_format"]} if spec["file_format"] else {}
    strategy = spec["strategy"]
    disposition = {"disposition": "merge", "strategy": strategy} if strategy else "merge"
    started = time.perf_counter()
    info = pipeline.run(
        items,
        table_name=table,
        write_disposition=disposition,
        primary_key=key,
        **options,
    )
    seconds = time.perf_counter() - started
    # the entity table's load jobs (the merge's follow-up jobs are "sql")
    formats = sorted(
        {
            job.job_file_info.file_format
            for package in info.load_packages
            for job in package.jobs["completed_jobs"]
            if job.job_file_info.table_name == table and job.job_file_info.file_format != "sql"
        }
    )
    expected = spec["file_format"] or DEFAULT_FORMAT
    if formats != [expected]:
        raise RuntimeError(f"dlt {mode} loaded {table} as {formats}, not {expected}")
    return {"seconds": seconds, "rows": frame.height, "formats": formats}
