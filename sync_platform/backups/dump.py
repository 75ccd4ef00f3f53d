"""Consistent dumps and the per-table figures (row counts, content checksums) that prove them.

PostgreSQL: a REPEATABLE READ transaction exports its snapshot; `pg_dump --snapshot` dumps
exactly that state while the same transaction counts and checksums every table, so the
manifest describes the dump even while syncs keep writing. SQLite: the online backup API
copies the database at one instant (WAL readers do not block writers); the figures are then
taken from the copy itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from sync_platform import inbox, settings
from sync_platform.errors import ConfigurationError, DatabaseError
from sync_platform.warehouse.connection import normalize_url

INBOX_TABLES = inbox.TABLES
CHECKSUM_MODULUS = 2**256
BATCH = 10_000


# --- per-table figures ------------------------------------------------------------------------


def _canonical(value: object) -> object:
    # The session time zone changes how timestamptz values come back, not what they are.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _row_digest(row: Iterable) -> int:
    canonical = tuple(_canonical(value) for value in row)
    return int.from_bytes(hashlib.sha256(repr(canonical).encode()).digest(), "big")


def table_checksum(rows: Iterable[Iterable]) -> tuple[int, str]:
    """(row count, checksum) of a table's rows in any order: the sum of each row's SHA-256
    modulo 2^256, so it streams in constant memory and needs no ORDER BY (or primary key)."""
    count, total = 0, 0
    for row in rows:
        count += 1
        total = (total + _row_digest(row)) % CHECKSUM_MODULUS
    return count, f"{total:064x}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _stream(result: sa.CursorResult) -> Iterator[sa.Row]:
    while batch := result.fetchmany(BATCH):
        yield from batch


def table_figures(
    connection: sa.Connection, tables: Iterable[str]
) -> tuple[dict[str, int], dict[str, str]]:
    counts, checksums = {}, {}
    for table in sorted(tables):
        result = connection.exec_driver_sql(
            f"SELECT * FROM {_quote(table)}", execution_options={"stream_results": True}
        )
        counts[table], checksums[table] = table_checksum(_stream(result))
    return counts, checksums


def sqlite_tables(connection: sqlite3.Connection) -> list[str]:
    return [
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]


def sqlite_file_figures(path: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Figures of an SQLite file, opened read-only."""
    engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with engine.connect() as connection:
            tables = sqlite_tables(connection.connection.driver_connection)
            return table_figures(connection, tables)
    finally:
        engine.dispose()


def postgres_tables(connection: sa.Connection) -> list[str]:
    return list(
        connection.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).scalars()
    )


# --- PostgreSQL client tools ------------------------------------------------------------------


def pg_tool(name: str) -> str:
    directory = os.environ.get(settings.PG_BIN_DIR_ENV)
    path = str(Path(directory) / name) if directory else shutil.which(name)
    if not path or not Path(path).exists():
        raise ConfigurationError(
            f"{name} was not found",
            hint=f"install the PostgreSQL client tools matching the server's major version, or "
            f"set {settings.PG_BIN_DIR_ENV} to their directory",
        )
    return path


def tool_major(version_output: str) -> int:
    match = re.search(r"\(PostgreSQL\) (\d+)", version_output)
    if not match:
        raise ConfigurationError(f"cannot read a version from {version_output.strip()!r}")
    return int(match.group(1))


def check_versions(tool: str, tool_version: str, server_version_num: int) -> None:
    """pg_dump/pg_restore must have the server's major version: an older client refuses a
    newer server, and a newer client writes archives an older pg_restore cannot read."""
    client, server = tool_major(tool_version), server_version_num // 10_000
    if client != server:
        raise ConfigurationError(
            f"{tool} is PostgreSQL {client} but the server is PostgreSQL {server}",
            hint=f"install the PostgreSQL {server} client tools (e.g. postgresql-client-{server})"
            f" and point {settings.PG_BIN_DIR_ENV} at their bin directory",
        )


def pg_tool_versions(connection: sa.Connection, *tools: str) -> dict[str, str]:
    server_num = int(connection.exec_driver_sql("SHOW server_version_num").scalar())
    versions = {"server": str(connection.exec_driver_sql("SHOW server_version").scalar())}
    for tool in tools:
        output = subprocess.run(
            [pg_tool(tool), "--version"], capture_output=True, text=True, check=True
        ).stdout
        check_versions(tool, output, server_num)
        versions[tool] = output.strip()
    return versions


def libpq_arguments(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for the client tools; the password goes in the environment,
    never on a command line (visible in `ps`) or in a log."""
    parsed = normalize_url(url)
    arguments = ["--dbname", parsed.database or "postgres"]
    if parsed.host:
        arguments += ["--host", parsed.host]
    if parsed.port:
        arguments += ["--port", str(parsed.port)]
    if parsed.username:
        arguments += ["--username", parsed.username]
    environment = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if parsed.password:
        environment["PGPASSWORD"] = parsed.password
    return arguments, environment


def _stderr_tail(stderr: bytes) -> str:
    return stderr.decode(errors="replace").strip()[-2000:]


def pg_dump_snapshot(
    engine: sa.Engine, url: str, kind: str, consume: Callable[[BinaryIO], None]
) -> tuple[dict[str, int], dict[str, str], dict[str, str]]:
    """Run `pg_dump -Fc` of one exported snapshot, its output streamed to `consume` (in a
    thread) while this thread counts and checksums the same snapshot; returns (counts,
    checksums, tool versions)."""
    with engine.connect() as connection:
        versions = pg_tool_versions(connection, "pg_dump", "pg_restore")
        connection.commit()
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
        tables = postgres_tables(connection)
        if kind == "inbox":
            tables = [table for table in tables if table in INBOX_TABLES]
        arguments, environment = libpq_arguments(url)
        command = [pg_tool("pg_dump"), "--format=custom", f"--snapshot={snapshot}", *arguments]
        for table in tables if kind == "inbox" else ():
            command += ["--table", f"public.{_quote(table)}"]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment
        )
        stderr: list[bytes] = []
        failures: list[BaseException] = []

        def stream() -> None:
            try:
                consume(process.stdout)
            except BaseException as exc:  # the sink failed: stop pg_dump, report below
                failures.append(exc)
                process.kill()

        drain = threading.Thread(target=lambda: stderr.append(process.stderr.read()))
        writer = threading.Thread(target=stream)
        drain.start()
        writer.start()
        try:
            counts, checksums = table_figures(connection, tables)
        finally:
            writer.join()
            process.wait()
            drain.join()
            connection.rollback()
    if failures:
        raise failures[0]
    if process.returncode != 0:
        raise DatabaseError(
            f"pg_dump failed (exit {process.returncode}): {_stderr_tail(b''.join(stderr))}",
            hint="check the warehouse is reachable and the role may read every table",
        )
    return counts, checksums, versions


def sqlite_copy(url: str, kind: str, destination: Path) -> None:
    """A consistent copy of the warehouse file (kind 'full') or of its inbox tables."""
    source_path = normalize_url(url).database
    if not source_path or not Path(source_path).exists():
        raise ConfigurationError(f"the SQLite warehouse file {source_path!r} does not exist")
    source = sqlite3.connect(source_path, timeout=30)
    try:
        if kind == "full":
            target = sqlite3.connect(destination)
            try:
                source.backup(target)  # all pages in one step: one consistent instant
            finally:
                target.close()
            return
        source.isolation_level = None
        source.execute("ATTACH DATABASE ? AS inbox_copy", (str(destination),))
        source.execute("BEGIN")  # one read snapshot for both tables
        for table in INBOX_TABLES:
            (create,) = source.execute(
                "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            source.execute(
                create.replace(f"CREATE TABLE {table}", f"CREATE TABLE inbox_copy.{table}", 1)
            )
            source.execute(f"INSERT INTO inbox_copy.{table} SELECT * FROM main.{table}")
        source.execute("COMMIT")
        source.execute("DETACH DATABASE inbox_copy")
    finally:
        source.close()
