"""Restore a backup's plain dump into a target database and prove it matches the manifest.

The plain dump only ever comes from `fetch_plain`, which checks the file's SHA-256 against the
manifest and decrypts (authenticating every byte) before anything touches a database.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import sqlite3
import subprocess
from pathlib import Path

import sqlalchemy as sa

from sync_platform.backups.crypto import BackupIntegrityError, BackupKey, decrypt_to_path
from sync_platform.backups.dump import (
    _quote,
    _stderr_tail,
    libpq_arguments,
    pg_tool,
    postgres_tables,
    sqlite_file_figures,
    table_figures,
)
from sync_platform.backups.manifest import Manifest, manifest_name
from sync_platform.backups.storage import BackupStorage
from sync_platform.errors import ConfigurationError, DatabaseError
from sync_platform.warehouse.connection import normalize_url, redacted


def load_manifest(
    storage: BackupStorage,
    backup_id: str,
    key: BackupKey | None = None,
    *,
    allow_unsigned: bool = False,
) -> Manifest:
    """The backup's manifest, trusted: its id and file name plain names, and, when a key is
    configured, its MAC valid (every field as the backup wrote it). `allow_unsigned` accepts
    a manifest without a MAC (a backup made before a key was configured) after an operator
    checked where it came from; an invalid MAC is never accepted."""
    try:
        name = manifest_name(backup_id)
    except ValueError as exc:
        hint = "give an id from `sync-platform backup list`"
        raise ConfigurationError(str(exc), hint=hint) from None
    if not storage.exists(name):
        raise BackupIntegrityError(
            f"backup {backup_id} has no manifest ({name}) in {storage.describe()}",
            hint="without its manifest a backup cannot be checked, so it is not restored; "
            "restore another one (`sync-platform backup list`)",
        )
    try:
        manifest = Manifest.from_json(storage.read_text(name))
    except (ValueError, KeyError, TypeError) as exc:
        reason = str(exc) if "not a plain name" in str(exc) else exc.__class__.__name__
        raise BackupIntegrityError(
            f"the manifest of backup {backup_id} is unreadable ({reason})",
            hint="restore another backup (`sync-platform backup list`)",
        ) from None
    if manifest.id != backup_id:
        raise BackupIntegrityError(
            f"the manifest {name} names another backup ({manifest.id[:60]!r})",
            hint="it was renamed or edited; restore another backup",
        )
    if key is None:
        return manifest
    if manifest.encrypted and manifest.key_id != key.key_id:
        raise BackupIntegrityError(
            f"backup {backup_id} was encrypted for key {manifest.key_id}, the configured key "
            f"is {key.key_id}",
            hint="set SYNC_PLATFORM_BACKUP_KEY to the identity the backup was made with; "
            "nothing was restored",
        )
    if manifest.mac is None or not manifest.encrypted:
        if not allow_unsigned:
            what = "is not signed" if manifest.mac is None else "says it is not encrypted"
            raise BackupIntegrityError(
                f"backup {backup_id}: its manifest {what}, while a backup key is configured "
                "(a backup made before the key was, or one someone without the key wrote)",
                hint="restore a signed backup; or, having checked where this one came from, "
                "pass --allow-unsigned",
            )
        return manifest
    if not hmac.compare_digest(manifest.mac, key.mac(manifest.signed_text())):
        raise BackupIntegrityError(
            f"backup {backup_id}: its manifest was edited after the backup wrote it (its MAC "
            "does not match)",
            hint="restore another backup (`sync-platform backup list`); nothing was restored",
        )
    return manifest


def fetch_plain(
    storage: BackupStorage, manifest: Manifest, key: BackupKey | None, work_dir: Path
) -> Path:
    """The backup's plain dump in `work_dir`, after its checksum and authentication passed."""
    what = f"backup {manifest.id}"
    if not storage.exists(manifest.file_name):
        raise BackupIntegrityError(
            f"{what}: its file {manifest.file_name} is missing from {storage.describe()}",
            hint="restore another backup (`sync-platform backup list`)",
        )
    digest = hashlib.sha256()
    with storage.reader(manifest.file_name) as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    if digest.hexdigest() != manifest.sha256:
        raise BackupIntegrityError(
            f"{what}: the file's SHA-256 does not match its manifest (modified or truncated)",
            hint="restore another backup (`sync-platform backup list`); nothing was restored",
        )
    work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    plain = work_dir / f"{manifest.id}.plain"
    if not manifest.encrypted:
        with storage.reader(manifest.file_name) as source, open(plain, "wb") as target:
            shutil.copyfileobj(source, target, 1024 * 1024)
        return plain
    if key is None:
        raise ConfigurationError(
            f"{what} is encrypted (key {manifest.key_id}) and no key is configured",
            hint="set SYNC_PLATFORM_BACKUP_KEY to that age identity",
        )
    if key.key_id != manifest.key_id:
        raise BackupIntegrityError(
            f"{what} was encrypted for key {manifest.key_id}, the configured key is {key.key_id}",
            hint="set SYNC_PLATFORM_BACKUP_KEY to the identity the backup was made with; "
            "nothing was restored",
        )
    with storage.reader(manifest.file_name) as source:
        decrypt_to_path(source, plain, key, what)
    return plain


def compare(manifest: Manifest, counts: dict[str, int], checksums: dict[str, str]) -> None:
    """Raise unless the restored tables hold exactly what the manifest says."""
    wrong = sorted(
        table
        for table in manifest.table_counts
        if counts.get(table) != manifest.table_counts[table]
        or checksums.get(table) != manifest.table_checksums.get(table)
    )
    if wrong:
        details = ", ".join(
            f"{t} ({counts.get(t, 'missing')} rows, manifest {manifest.table_counts[t]}"
            + ("" if counts.get(t) != manifest.table_counts[t] else ", content differs")
            + ")"
            for t in wrong[:10]
        )
        raise BackupIntegrityError(
            f"backup {manifest.id}: restored tables differ from the manifest: {details}",
            hint="the dump does not hold what was backed up; restore another backup",
        )


# --- PostgreSQL -------------------------------------------------------------------------------


def _admin_engine(url: str) -> sa.Engine:
    server = normalize_url(url).set(database="postgres")
    return sa.create_engine(server, isolation_level="AUTOCOMMIT")


def pg_database_exists(url: str) -> bool:
    name = normalize_url(url).database
    engine = _admin_engine(url)
    try:
        with engine.connect() as connection:
            return bool(
                connection.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).scalar()
            )
    finally:
        engine.dispose()


def create_pg_database(url: str) -> None:
    engine = _admin_engine(url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {_quote(normalize_url(url).database)}")
    finally:
        engine.dispose()


def drop_pg_database(url: str) -> None:
    engine = _admin_engine(url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(
                f"DROP DATABASE IF EXISTS {_quote(normalize_url(url).database)} WITH (FORCE)"
            )
    finally:
        engine.dispose()


def swap_pg_databases(live_url: str, restored_url: str, kept_name: str) -> None:
    """Put the restored database in the live one's place: the live one is renamed to
    `kept_name` (kept, not dropped), then the restored one takes its name. Sessions on the
    live database are ended first (a rename needs it unused). If the second rename fails,
    the first is undone."""
    live = normalize_url(live_url).database
    restored = normalize_url(restored_url).database
    engine = _admin_engine(live_url)
    try:
        with engine.connect() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": live},
            )
            connection.exec_driver_sql(
                f"ALTER DATABASE {_quote(live)} RENAME TO {_quote(kept_name)}"
            )
            try:
                connection.exec_driver_sql(
                    f"ALTER DATABASE {_quote(restored)} RENAME TO {_quote(live)}"
                )
            except sa.exc.DBAPIError:
                connection.exec_driver_sql(
                    f"ALTER DATABASE {_quote(kept_name)} RENAME TO {_quote(live)}"
                )
                raise
    finally:
        engine.dispose()


def pg_table_names(url: str) -> list[str]:
    engine = sa.create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            return postgres_tables(connection)
    finally:
        engine.dispose()


def pg_restore(plain: Path, manifest: Manifest, target_url: str, clean: bool) -> None:
    arguments, environment = libpq_arguments(target_url)
    command = [pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error"]
    command += ["--single-transaction", *arguments]
    if clean:
        command += ["--clean", "--if-exists"]
    if manifest.kind == "inbox":
        # The inbox tables alone: their foreign keys point at tables this dump does not hold.
        listing = subprocess.run(
            [pg_tool("pg_restore"), "--list", str(plain)], capture_output=True, check=True
        ).stdout.decode()
        use_list = plain.with_suffix(".list")
        use_list.write_text(
            "\n".join(line for line in listing.splitlines() if " FK CONSTRAINT " not in line)
        )
        command += ["--use-list", str(use_list)]
    result = subprocess.run([*command, str(plain)], capture_output=True, env=environment)
    if result.returncode != 0:
        raise DatabaseError(
            f"pg_restore into {redacted(target_url)} failed (exit {result.returncode}): "
            f"{_stderr_tail(result.stderr)}",
            hint="nothing was committed (single transaction); check the target server",
        )


def pg_figures(target_url: str, tables: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    engine = sa.create_engine(normalize_url(target_url))
    try:
        with engine.connect() as connection:
            present = set(postgres_tables(connection))
            return table_figures(connection, [t for t in tables if t in present])
    finally:
        engine.dispose()


# --- SQLite -----------------------------------------------------------------------------------


def sqlite_restore(plain: Path, target_path: Path, overwrite_live: bool) -> None:
    """A new file (temp + rename), or over the live file through the backup API (which takes
    the database lock, so readers see the old or the new database, never a mix)."""
    if overwrite_live:
        source, target = sqlite3.connect(plain), sqlite3.connect(target_path, timeout=60)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        return
    target_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = target_path.with_name(f".restoring-{target_path.name}")
    try:
        shutil.copyfile(plain, temporary)
        temporary.replace(target_path)
    finally:
        temporary.unlink(missing_ok=True)


__all__ = [
    "compare",
    "create_pg_database",
    "drop_pg_database",
    "fetch_plain",
    "load_manifest",
    "pg_database_exists",
    "pg_figures",
    "pg_restore",
    "pg_table_names",
    "sqlite_file_figures",
    "sqlite_restore",
]
