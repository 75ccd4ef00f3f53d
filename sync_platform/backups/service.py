"""The backup operations the Dagster jobs and the CLI run: create, verify, restore, drill,
prune, list. Each takes the warehouse URL and a `BackupConfig` (storage + key)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa

from sync_platform import settings
from sync_platform.backups import restore as restoring
from sync_platform.backups.crypto import BackupIntegrityError, BackupKey, encrypt_stream
from sync_platform.backups.dump import pg_dump_snapshot, sqlite_copy, sqlite_file_figures
from sync_platform.backups.manifest import Manifest, manifest_name
from sync_platform.backups.retention import BackupInfo, backups_to_keep
from sync_platform.backups.storage import BackupStorage, LocalDirectoryStorage
from sync_platform.errors import ConfigurationError
from sync_platform.runtime_config import non_negative_int, positive_int, positive_minutes, setting
from sync_platform.warehouse.connection import create_warehouse_engine, normalize_url, redacted
from sync_platform.warehouse.platform_tables import backups

log = logging.getLogger("sync_platform.backups")
KINDS = ("full", "inbox")

KEEP_DAILY = setting(
    "backup_keep_daily",
    7,
    non_negative_int,
    "full backups kept: the newest of each of the last N days with one",
)
KEEP_WEEKLY = setting(
    "backup_keep_weekly",
    4,
    non_negative_int,
    "full backups kept: the newest of each of the last N ISO weeks",
)
KEEP_MONTHLY = setting(
    "backup_keep_monthly",
    6,
    non_negative_int,
    "full backups kept: the newest of each of the last N months",
)
INBOX_KEEP_HOURS = setting(
    "backup_inbox_keep_hours",
    72,
    positive_int,
    "hours the hourly webhook-inbox backups are kept",
)
RESTORE_RTO_MINUTES = setting(
    "restore_rto_minutes",
    15.0,
    positive_minutes,
    "recovery time objective: a slower restore drill alerts",
)


@dataclass
class BackupConfig:
    storage: BackupStorage
    key: BackupKey | None
    allow_unencrypted: bool = False
    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))

    @classmethod
    def from_values(
        cls, directory: str | Path, key_secret: str | None, allow_unencrypted: bool = False
    ) -> BackupConfig:
        root = Path(directory)
        return cls(
            storage=LocalDirectoryStorage(root),
            key=BackupKey.from_secret(key_secret) if key_secret else None,
            allow_unencrypted=allow_unencrypted,
            work_dir=root / ".work",
        )

    @classmethod
    def from_env(cls) -> BackupConfig:
        return cls.from_values(
            settings.backup_dir(),
            os.environ.get(settings.BACKUP_KEY_ENV),
            os.environ.get(settings.BACKUP_ALLOW_UNENCRYPTED_ENV, "").lower() in ("1", "true"),
        )


class HashingWriter:
    """Counts and hashes what goes through it to the underlying file."""

    def __init__(self, target: BinaryIO):
        self.target, self.size, self.digest = target, 0, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def _versions() -> dict[str, str]:
    found = {"sqlite": sqlite3.sqlite_version}
    for package in ("pyrage", "sync-platform"):
        with contextlib.suppress(package_metadata.PackageNotFoundError):
            found[package] = package_metadata.version(package)
    return found


def new_backup_id(kind: str, now: datetime) -> str:
    return f"{kind}-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _record(engine: sa.Engine, backup_id: str, **values: Any) -> None:
    with engine.begin() as connection:
        updated = connection.execute(
            sa.update(backups).where(backups.c.id == backup_id).values(**values)
        )
        if updated.rowcount == 0 and "kind" in values:
            connection.execute(sa.insert(backups).values(id=backup_id, **values))


def _manifest_row(manifest: Manifest, location: str) -> dict[str, Any]:
    return {
        "kind": manifest.kind,
        "created_at": manifest.created_at,
        "source_database": manifest.source_database,
        "dialect": manifest.dialect,
        "location": location,
        "size_bytes": manifest.size_bytes,
        "sha256": manifest.sha256,
        "encrypted": manifest.encrypted,
        "key_id": manifest.key_id,
        "table_counts": manifest.table_counts,
        "table_checksums": manifest.table_checksums,
        "tool_versions": manifest.tool_versions,
        "backup_seconds": manifest.backup_seconds,
    }


def create_backup(
    warehouse_url: str, config: BackupConfig, kind: str = "full", now: datetime | None = None
) -> Manifest:
    """Dump, encrypt and store the warehouse (or its webhook inbox); record it."""
    if kind not in KINDS:
        raise ConfigurationError(f"unknown backup kind {kind!r}", hint="use 'full' or 'inbox'")
    if config.key is None and not config.allow_unencrypted:
        raise ConfigurationError(
            f"no backup key: {settings.BACKUP_KEY_ENV} is not set",
            hint="set it to an age identity (AGE-SECRET-KEY-1…, see docs/backup_and_recovery.md)"
            f", or set {settings.BACKUP_ALLOW_UNENCRYPTED_ENV}=1 to write plain backups (dev only)",
        )
    now = now or datetime.now(UTC)
    engine = create_warehouse_engine(warehouse_url)
    dialect = engine.dialect.name
    backup_id = new_backup_id(kind, now)
    suffix = ("dump" if dialect == "postgresql" else "sqlite") + (".age" if config.key else "")
    file_name = f"{backup_id}.{suffix}"
    location = f"{config.storage.describe()}/{file_name}"
    started = time.perf_counter()
    _record(
        engine,
        backup_id,
        kind=kind,
        created_at=now,
        source_database=redacted(warehouse_url),
        dialect=dialect,
        location=location,
        encrypted=config.key is not None,
        key_id=config.key.key_id if config.key else None,
        status="running",
    )
    try:

        def store(reader: BinaryIO, writer: HashingWriter) -> None:
            if config.key:
                encrypt_stream(reader, writer, config.key)
            else:
                shutil.copyfileobj(reader, writer, 1024 * 1024)

        with config.storage.writer(file_name) as handle:
            writer = HashingWriter(handle)
            if dialect == "postgresql":
                counts, checksums, versions = pg_dump_snapshot(
                    engine, warehouse_url, kind, lambda reader: store(reader, writer)
                )
            else:
                live = Path(normalize_url(warehouse_url).database)
                with tempfile.TemporaryDirectory(prefix=".backup-", dir=live.parent) as scratch:
                    copy = Path(scratch) / "copy.db"
                    sqlite_copy(warehouse_url, kind, copy)
                    counts, checksums = sqlite_file_figures(copy)
                    with open(copy, "rb") as reader:
                        store(reader, writer)
                versions = {}
        manifest = Manifest(
            id=backup_id,
            kind=kind,
            created_at=now,
            source_database=redacted(warehouse_url),
            dialect=dialect,
            file_name=file_name,
            size_bytes=writer.size,
            sha256=writer.digest.hexdigest(),
            encrypted=config.key is not None,
            key_id=config.key.key_id if config.key else None,
            table_counts=counts,
            table_checksums=checksums,
            tool_versions={**_versions(), **versions},
            backup_seconds=round(time.perf_counter() - started, 3),
        )
        if config.key is not None:
            manifest.mac = config.key.mac(manifest.signed_text())
        config.storage.write_text(manifest_name(backup_id), manifest.to_json())
        _record(engine, backup_id, status="created", **_manifest_row(manifest, location))
    except Exception as exc:
        with contextlib.suppress(OSError, ConfigurationError):
            config.storage.delete(file_name)
        _record(engine, backup_id, status="failed", error=str(exc)[:4000])
        raise
    finally:
        engine.dispose()
    log.info("backup %s written to %s (%d bytes)", backup_id, location, manifest.size_bytes)
    return manifest


@dataclass(frozen=True)
class RestoreOutcome:
    manifest: Manifest
    target: str  # redacted
    restore_seconds: float  # fetch, check, decrypt and load: the recovery time
    verify_seconds: float  # counting and checksumming the restored tables


def _restore_into(
    manifest: Manifest,
    config: BackupConfig,
    target_url: str,
    *,
    overwrite_live: bool = False,
    throwaway: bool = False,
) -> RestoreOutcome:
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=".restore-", dir=_ensure(config.work_dir)))
    created_database = False
    # Over the live PostgreSQL warehouse: into a new database first, swapped in only once it
    # matches the manifest, so a restore that fails verification changes nothing live.
    staging = overwrite_live and manifest.dialect == "postgresql"
    restore_url = (
        _scratch_url(target_url, f"restore_{manifest.id[-8:].lower()}") if staging else target_url
    )
    try:
        plain = restoring.fetch_plain(config.storage, manifest, config.key, work)
        if manifest.dialect == "postgresql":
            if not overwrite_live or staging:
                restoring.create_pg_database(restore_url)
                created_database = True
            restoring.pg_restore(plain, manifest, restore_url, clean=False)
            restored = time.perf_counter()
            counts, checksums = restoring.pg_figures(restore_url, list(manifest.table_counts))
            restoring.compare(manifest, counts, checksums)
            if staging:
                live = normalize_url(target_url).database
                kept = f"{live}_before_restore_{uuid.uuid4().hex[:8]}"[-63:]
                restoring.swap_pg_databases(target_url, restore_url, kept)
                created_database = False  # it is the live warehouse now
                log.warning("the warehouse replaced before the restore is kept as %s", kept)
        else:
            counts, checksums = sqlite_file_figures(plain)
            restoring.compare(manifest, counts, checksums)  # before the target is touched
            if throwaway:  # the decrypted file is the throwaway restore
                restored = time.perf_counter()
            else:
                restoring.sqlite_restore(
                    plain, Path(normalize_url(target_url).database), overwrite_live
                )
                restored = time.perf_counter()
                # what was just restored, read back from the target itself
                target_counts, target_sums = sqlite_file_figures(
                    Path(normalize_url(target_url).database)
                )
                restoring.compare(manifest, target_counts, target_sums)
    except BaseException:
        if created_database and not throwaway:
            restoring.drop_pg_database(restore_url)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if throwaway and created_database:
            restoring.drop_pg_database(restore_url)
    finished = time.perf_counter()
    return RestoreOutcome(
        manifest, redacted(target_url), round(restored - started, 6), round(finished - restored, 6)
    )


def _ensure(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def _scratch_url(warehouse_url: str, label: str) -> str:
    parsed = normalize_url(warehouse_url)
    token = uuid.uuid4().hex[:8]
    if parsed.get_backend_name() == "postgresql":
        name = f"{parsed.database}_{label}_{token}"[:63]
        return parsed.set(database=name).render_as_string(hide_password=False)
    live = Path(parsed.database)
    return f"sqlite:///{live.with_name(f'{live.stem}.{label}-{token}.db')}"


def verify_backup(
    warehouse_url: str, config: BackupConfig, backup_id: str, now: datetime | None = None
) -> RestoreOutcome:
    """Restore into a throwaway database (Postgres) or file (SQLite), compare every table's
    count and checksum with the manifest, record verified_at and the restore seconds."""
    engine = create_warehouse_engine(warehouse_url)
    try:
        manifest = restoring.load_manifest(config.storage, backup_id, config.key)
        scratch = _scratch_url(warehouse_url, "verify")
        if manifest.dialect != engine.dialect.name:
            scratch = _scratch_for_dialect(manifest, config)
        outcome = _restore_into(manifest, config, scratch, throwaway=True)
    except Exception as exc:
        _record(engine, backup_id, status="failed", error=str(exc)[:4000])
        engine.dispose()
        raise
    location = f"{config.storage.describe()}/{manifest.file_name}"
    _record(
        engine,
        backup_id,
        status="verified",
        verified_at=now or datetime.now(UTC),
        restore_seconds=outcome.restore_seconds,
        error=None,
        **_manifest_row(manifest, location),
    )
    engine.dispose()
    return outcome


def _scratch_for_dialect(manifest: Manifest, config: BackupConfig) -> str:
    if manifest.dialect == "sqlite":
        return f"sqlite:///{_ensure(config.work_dir) / f'verify-{uuid.uuid4().hex[:8]}.db'}"
    raise ConfigurationError(
        f"backup {manifest.id} is a PostgreSQL backup and the warehouse is not PostgreSQL",
        hint="verify or restore it with SYNC_PLATFORM_WAREHOUSE_URL pointing at a PostgreSQL "
        "server, or pass --target postgresql://…/new_database",
    )


def default_restore_target(warehouse_url: str, backup_id: str) -> str:
    """A new database beside the live one: `<db>_restore_<stamp>` or `<file>.restore-….db`."""
    stamp = backup_id.split("-")[1].lower() if backup_id.count("-") >= 2 else "x"
    return _scratch_url(warehouse_url, f"restore_{stamp}")


def _same_database(one: str, other: str) -> bool:
    first, second = normalize_url(one), normalize_url(other)
    if first.get_backend_name() != second.get_backend_name():
        return False
    if first.get_backend_name() == "sqlite":
        return Path(first.database or "").resolve() == Path(second.database or "").resolve()
    return (first.host, first.port or 5432, first.database) == (
        second.host,
        second.port or 5432,
        second.database,
    )


def restore_backup(
    warehouse_url: str,
    config: BackupConfig,
    backup_id: str,
    target_url: str | None = None,
    overwrite_live: bool = False,
    allow_unsigned: bool = False,
) -> RestoreOutcome:
    """Restore into `target_url` (default: a new database beside the live one).

    The live warehouse is only ever overwritten with `overwrite_live`; any other existing,
    non-empty target is refused. Checksum and authentication are checked before the target
    is touched, and the restored tables are compared with the manifest afterwards.
    """
    manifest = restoring.load_manifest(
        config.storage, backup_id, config.key, allow_unsigned=allow_unsigned
    )
    if overwrite_live:
        if target_url and not _same_database(target_url, warehouse_url):
            raise ConfigurationError(
                "--overwrite-live restores over the live warehouse; do not also give --target"
            )
        target_url = warehouse_url
    target_url = target_url or default_restore_target(warehouse_url, backup_id)
    if _same_database(target_url, warehouse_url) and not overwrite_live:
        raise ConfigurationError(
            f"{redacted(target_url)} is the live warehouse",
            hint="restore into a new database (the default), or pass --overwrite-live to "
            "replace the live warehouse on purpose",
        )
    dialect = normalize_url(target_url).get_backend_name()
    if dialect != manifest.dialect:
        raise ConfigurationError(
            f"backup {backup_id} is a {manifest.dialect} backup; the target is {dialect}",
            hint=f"give a {manifest.dialect} --target",
        )
    if not overwrite_live:
        if dialect == "postgresql" and restoring.pg_database_exists(target_url):
            raise ConfigurationError(
                f"target database {redacted(target_url)} already exists",
                hint="name a new database (it is created), or drop that one first",
            )
        if dialect == "sqlite" and Path(normalize_url(target_url).database).exists():
            raise ConfigurationError(
                f"target file {normalize_url(target_url).database} already exists",
                hint="name a new file, or remove that one first",
            )
    outcome = _restore_into(manifest, config, target_url, overwrite_live=overwrite_live)
    log.info("backup %s restored into %s", backup_id, outcome.target)
    return outcome


def latest_backup_id(warehouse_url: str, kind: str = "full") -> str | None:
    engine = create_warehouse_engine(warehouse_url)
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.select(backups.c.id)
                .where(
                    backups.c.kind == kind,
                    backups.c.status.in_(("created", "verified")),
                    backups.c.pruned_at.is_(None),
                )
                .order_by(backups.c.created_at.desc())
                .limit(1)
            ).scalar()
    finally:
        engine.dispose()


def prune_backups(
    warehouse_url: str, config: BackupConfig, now: datetime | None = None
) -> list[str]:
    """Delete the backups retention does not keep (files and manifests; rows stay, with
    pruned_at). Returns the pruned ids."""
    now = now or datetime.now(UTC)
    engine = create_warehouse_engine(warehouse_url)
    try:
        with engine.begin() as connection:
            policy = {
                "daily": KEEP_DAILY.read(connection),
                "weekly": KEEP_WEEKLY.read(connection),
                "monthly": KEEP_MONTHLY.read(connection),
                "inbox_keep_hours": INBOX_KEEP_HOURS.read(connection),
            }
            rows = connection.execute(
                sa.select(
                    backups.c.id, backups.c.kind, backups.c.created_at, backups.c.status
                ).where(backups.c.pruned_at.is_(None))
            ).all()
            infos = [BackupInfo(r.id, r.kind, _aware(r.created_at), r.status) for r in rows]
            keep = backups_to_keep(infos, now=now, **policy)
            pruned = sorted(info.id for info in infos if info.id not in keep)
            for backup_id in pruned:
                for name in config.storage.names():
                    if name.startswith(f"{backup_id}."):
                        config.storage.delete(name)
            if pruned:
                connection.execute(
                    sa.update(backups).where(backups.c.id.in_(pruned)).values(pruned_at=now)
                )
        remove = getattr(config.storage, "remove_stale_temporaries", None)
        if remove:
            remove()
    finally:
        engine.dispose()
    return pruned


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def list_backups(warehouse_url: str | None, config: BackupConfig) -> list[dict[str, Any]]:
    """Every backup in storage (its manifest), with the status the warehouse recorded."""
    recorded: dict[str, dict[str, Any]] = {}
    if warehouse_url:
        try:
            engine = create_warehouse_engine(warehouse_url)
            with engine.connect() as connection:
                rows = connection.execute(sa.select(backups)).mappings().all()
            recorded = {row["id"]: dict(row) for row in rows}
            engine.dispose()
        except sa.exc.SQLAlchemyError:
            log.warning("warehouse unreachable: listing backups from storage only")
    found = []
    for name in config.storage.names():
        if not name.endswith(".manifest.json"):
            continue
        backup_id = name.removesuffix(".manifest.json")
        try:
            manifest = restoring.load_manifest(
                config.storage, backup_id, config.key, allow_unsigned=True
            )
        except (BackupIntegrityError, ConfigurationError) as exc:
            found.append({"id": backup_id, "status": "unreadable", "error": str(exc)})
            continue
        row = recorded.get(backup_id, {})
        found.append(
            {
                "id": backup_id,
                "kind": manifest.kind,
                "created_at": manifest.created_at,
                "dialect": manifest.dialect,
                "size_bytes": manifest.size_bytes,
                "encrypted": manifest.encrypted,
                "key_id": manifest.key_id,
                "rows": sum(manifest.table_counts.values()),
                "status": row.get("status", "not recorded"),
                "verified_at": row.get("verified_at"),
                "restore_seconds": row.get("restore_seconds"),
                "file_present": config.storage.exists(manifest.file_name),
            }
        )
    return sorted(found, key=lambda item: str(item.get("created_at", "")), reverse=True)
