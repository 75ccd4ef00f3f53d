"""Backups: round trips on both dialects, refused backups, retention, consistency under
writes, the Dagster jobs, the missing-backup rule and the CLI."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyrage
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sync_platform.alerting import rules
from sync_platform.backups import service
from sync_platform.backups.crypto import BackupIntegrityError
from sync_platform.backups.dump import check_versions, table_figures
from sync_platform.backups.manifest import Manifest, manifest_name
from sync_platform.backups.restore import drop_pg_database
from sync_platform.backups.retention import BackupInfo, backups_to_keep
from sync_platform.cli import app
from sync_platform.definitions import build_definitions
from sync_platform.defs.ops.resources import BackupResource
from sync_platform.errors import ConfigurationError
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.runtime_config import set_setting
from sync_platform.warehouse.connection import create_warehouse_engine, normalize_url
from sync_platform.warehouse.platform_tables import (
    backups,
    sync_alerts,
    sync_runs,
    webhook_inbox,
    webhook_rejections,
)

KEY = str(pyrage.x25519.Identity.generate())
OTHER_KEY = str(pyrage.x25519.Identity.generate())
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path) -> service.BackupConfig:
    return service.BackupConfig.from_values(tmp_path / "backups", KEY)


def seed(engine: sa.Engine, runs: int = 30) -> None:
    with engine.begin() as connection:
        for i in range(runs):
            connection.execute(
                sa.insert(sync_runs).values(
                    source="dealer_feed",
                    entity="dealer_stock",
                    trigger="scheduled",
                    started_at=NOW - timedelta(minutes=i),
                    finished_at=NOW,
                    status="succeeded",
                    fetched=i,
                    phase_seconds={"fetch": i / 10, "merge": 0.5},
                )
            )
        connection.execute(
            sa.insert(sync_alerts).values(
                severity="high",
                type="stale_sync",
                message="ünïcode ✓ message",
                dedup_key="stale_sync:x",
                status="open",
                created_at=NOW,
                last_seen_at=NOW,
                occurrences=2,
                details={"a": [1, 2]},
                pending_channels=[],
            )
        )
        for i in range(12):
            connection.execute(
                sa.insert(webhook_inbox).values(
                    delivery_id=f"msg_{i}",
                    workflow_key="form_submission",
                    received_at=NOW,
                    origin="receiver",
                    headers={"webhook-id": f"msg_{i}"},
                    body=f'{{"n": {i}}}',
                    processed_by_run_id=1 if i % 2 else None,
                )
            )
        connection.execute(
            sa.insert(webhook_rejections).values(
                received_at=NOW,
                workflow_key="form_submission",
                status_code=401,
                reason="bad signature",
                headers={},
                body=b"\x00\xffraw",
            )
        )


def figures(url: str, tables=None) -> tuple[dict, dict]:
    engine = create_warehouse_engine(url)
    try:
        with engine.connect() as connection:
            names = tables or sa.inspect(connection).get_table_names()
            return table_figures(connection, names)
    finally:
        engine.dispose()


def drop_target(url: str) -> None:
    if normalize_url(url).get_backend_name() == "postgresql":
        drop_pg_database(url)


# --- round trips --------------------------------------------------------------------------------


def test_round_trip_restores_identical_content_after_damage(warehouse_url, engine, config):
    seed(engine)
    seeded = ["sync_runs", "sync_alerts", "webhook_inbox", "webhook_rejections"]
    before_counts, before_sums = figures(warehouse_url, seeded)
    manifest = service.create_backup(warehouse_url, config)
    assert manifest.encrypted and manifest.key_id.startswith("age1")
    assert manifest.table_counts["sync_runs"] == 30 and manifest.table_counts["webhook_inbox"] == 12
    assert {t: manifest.table_checksums[t] for t in seeded} == before_sums
    stored = Manifest.from_json(config.storage.read_text(manifest_name(manifest.id)))
    assert stored == manifest
    assert "sync_runs" not in config.storage.names()  # nothing plain beside the backup
    with engine.connect() as connection:
        row = connection.execute(sa.select(backups).where(backups.c.id == manifest.id)).one()
    assert row.status == "created" and row.sha256 == manifest.sha256
    assert row.table_counts == manifest.table_counts

    # Into a new database (the default): identical content, the live one untouched.
    outcome = service.restore_backup(warehouse_url, config, manifest.id)
    restored_url = (
        normalize_url(warehouse_url).set(database=normalize_url(outcome.target).database)
    ).render_as_string(hide_password=False)
    assert restored_url != normalize_url(warehouse_url).render_as_string(hide_password=False)
    try:
        assert figures(restored_url, seeded) == (before_counts, before_sums)
    finally:
        drop_target(restored_url)

    # Damage the live warehouse: a dropped table, deleted and altered rows.
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE sync_alerts"))
        connection.execute(sa.delete(sync_runs).where(sync_runs.c.id > 10))
        connection.execute(sa.update(webhook_inbox).values(body="{}"))
    assert figures(warehouse_url, ["sync_runs"])[0]["sync_runs"] == 10

    # Over the live warehouse only when asked to.
    with pytest.raises(ConfigurationError, match="live warehouse"):
        service.restore_backup(warehouse_url, config, manifest.id, target_url=warehouse_url)
    engine.dispose()
    service.restore_backup(warehouse_url, config, manifest.id, overwrite_live=True)
    counts, sums = figures(warehouse_url, list(manifest.table_counts))
    assert (counts, sums) == (manifest.table_counts, manifest.table_checksums)
    assert figures(warehouse_url, seeded) == (before_counts, before_sums)
    if normalize_url(warehouse_url).get_backend_name() == "postgresql":
        (kept,) = kept_databases(warehouse_url)  # the damaged one, kept beside it
        kept_url = normalize_url(warehouse_url).set(database=kept)
        assert figures(kept_url.render_as_string(hide_password=False), ["sync_runs"])[0] == {
            "sync_runs": 10
        }
        drop_pg_database(kept_url.render_as_string(hide_password=False))


def kept_databases(url: str) -> list[str]:
    """The databases an --overwrite-live restore kept (`<db>_before_restore_…`)."""
    live = normalize_url(url)
    admin = sa.create_engine(live.set(database="postgres"))
    with admin.connect() as connection:
        names = (
            connection.execute(
                sa.text("SELECT datname FROM pg_database WHERE datname LIKE :pattern"),
                {"pattern": f"{live.database}_before_restore_%"},
            )
            .scalars()
            .all()
        )
    admin.dispose()
    return list(names)


@pytest.mark.parametrize("warehouse_url", ["postgresql"], indirect=True)
def test_overwrite_live_that_fails_verification_changes_nothing_live(warehouse_url, engine, config):
    """Restored into a new database and compared there: a backup whose content does not match
    its (signed) manifest never replaces the live warehouse."""
    seed(engine)
    manifest = service.create_backup(warehouse_url, config)
    manifest.table_counts["sync_runs"] += 1  # as only a holder of the key could
    manifest.mac = config.key.mac(manifest.signed_text())
    config.storage.write_text(manifest_name(manifest.id), manifest.to_json())
    with engine.begin() as connection:
        connection.execute(sa.delete(sync_runs).where(sync_runs.c.id > 20))
    live_before = figures(warehouse_url)
    engine.dispose()

    with pytest.raises(BackupIntegrityError, match="restored tables differ from the manifest"):
        service.restore_backup(warehouse_url, config, manifest.id, overwrite_live=True)

    assert figures(warehouse_url) == live_before
    assert kept_databases(warehouse_url) == []
    admin = sa.create_engine(normalize_url(warehouse_url).set(database="postgres"))
    with admin.connect() as connection:
        leftovers = connection.execute(
            sa.text("SELECT count(*) FROM pg_database WHERE datname LIKE :pattern"),
            {"pattern": f"{normalize_url(warehouse_url).database}_restoring_%"},
        ).scalar()
    admin.dispose()
    assert leftovers == 0


def test_inbox_backup_holds_only_the_inbox_and_verifies(warehouse_url, engine, config):
    seed(engine)
    manifest = service.create_backup(warehouse_url, config, kind="inbox")
    assert manifest.table_counts == {"webhook_inbox": 12, "webhook_rejections": 1}
    outcome = service.verify_backup(warehouse_url, config, manifest.id)
    assert outcome.restore_seconds >= 0
    with engine.connect() as connection:
        row = connection.execute(sa.select(backups).where(backups.c.id == manifest.id)).one()
    assert row.status == "verified" and row.verified_at is not None
    assert row.restore_seconds == outcome.restore_seconds


def test_backup_while_a_sync_writes_is_consistent(warehouse_url, engine, config):
    """A writer commits 5 runs per transaction during the backup: the backup holds a whole
    number of transactions, and restoring it gives exactly what its manifest says."""
    stop = threading.Event()
    committed = []

    def write() -> None:
        writer = create_warehouse_engine(warehouse_url)
        while not stop.is_set():
            with writer.begin() as connection:
                for _ in range(5):
                    connection.execute(
                        sa.insert(sync_runs).values(
                            source="s",
                            entity="e",
                            trigger="manual",
                            started_at=NOW,
                            status="running",
                        )
                    )
            committed.append(1)
        writer.dispose()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while len(committed) < 20:
            time.sleep(0.01)
        manifest = service.create_backup(warehouse_url, config)
        during = len(committed)
    finally:
        stop.set()
        thread.join()
    backed_up = manifest.table_counts["sync_runs"]
    assert backed_up % 5 == 0 and 20 * 5 <= backed_up <= (during + 1) * 5
    service.verify_backup(warehouse_url, config, manifest.id)  # restored == manifest


# --- refused backups ------------------------------------------------------------------------------


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _rewrite_manifest_sha(config, manifest, signed: bool = False) -> None:
    """What an attacker who also edits the manifest would do. Unsigned, the manifest's MAC
    refuses it; signed (only a holder of the key can), age's authentication still stands
    between the modified file and a restore."""
    import hashlib

    path = Path(config.storage.describe()) / manifest.file_name
    manifest.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    if signed:
        manifest.mac = config.key.mac(manifest.signed_text())
    config.storage.write_text(manifest_name(manifest.id), manifest.to_json())


@pytest.mark.parametrize(
    "damage, message",
    [
        ("flipped_byte", "SHA-256 does not match"),
        ("flipped_byte_matching_manifest", "its manifest was edited after the backup wrote it"),
        ("flipped_byte_matching_signed_manifest", "failed authentication"),
        ("truncated_matching_signed_manifest", "failed authentication"),
        ("truncated", "SHA-256 does not match"),
        ("wrong_key", "was encrypted for key"),
        ("missing_manifest", "has no manifest"),
        ("edited_counts", "its manifest was edited after the backup wrote it"),
        ("downgraded_to_plain", "its manifest is not signed, while a backup key is configured"),
        ("file_name_escapes", "file name '../../escaped.db' is not a plain name"),
        ("renamed_manifest", "names another backup"),
    ],
)
def test_damaged_backups_are_refused_and_nothing_is_overwritten(tmp_path, config, damage, message):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    from sync_platform.warehouse.schema import upgrade_warehouse
    from sync_platform_tests.conftest import all_entities

    engine = create_warehouse_engine(url)
    upgrade_warehouse(engine, all_entities())
    seed(engine)
    manifest = service.create_backup(url, config)
    path = Path(config.storage.describe()) / manifest.file_name
    if damage.startswith("flipped_byte"):
        _flip_middle_byte(path)
    if damage.startswith("truncated"):
        path.write_bytes(path.read_bytes()[:-200])
    if damage.endswith("matching_manifest"):
        _rewrite_manifest_sha(config, manifest)
    if damage.endswith("matching_signed_manifest"):  # as only a holder of the key could
        _rewrite_manifest_sha(config, manifest, signed=True)
    if damage == "missing_manifest":
        config.storage.delete(manifest_name(manifest.id))
    if damage == "edited_counts":
        manifest.table_counts["sync_runs"] += 1
        config.storage.write_text(manifest_name(manifest.id), manifest.to_json())
    if damage == "downgraded_to_plain":  # the attacker's own plain dump, checksum to match
        import hashlib
        import shutil

        shutil.copy(url.removeprefix("sqlite:///"), path)
        manifest.encrypted, manifest.key_id, manifest.mac = False, None, None
        manifest.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        config.storage.write_text(manifest_name(manifest.id), manifest.to_json())
    if damage == "file_name_escapes":
        manifest.file_name = "../../escaped.db"
        config.storage.write_text(manifest_name(manifest.id), manifest.to_json())
    if damage == "renamed_manifest":
        other = manifest.id + "-copy"
        config.storage.write_text(manifest_name(other), manifest.to_json())
        manifest.id = other
    used = config
    if damage == "wrong_key":
        used = service.BackupConfig.from_values(config.storage.describe(), OTHER_KEY)
    live_before = figures(url)
    target = tmp_path / "restored.db"

    with pytest.raises(BackupIntegrityError, match=message) as refused:
        service.restore_backup(url, used, manifest.id, target_url=f"sqlite:///{target}")
    assert "What to do" in str(refused.value)
    assert not target.exists()
    with pytest.raises(BackupIntegrityError, match=message):
        service.restore_backup(url, used, manifest.id, overwrite_live=True)
    assert figures(url) == live_before
    work = Path(config.storage.describe()) / ".work"
    assert not [p for p in work.rglob("*") if p.is_file()]  # no plaintext left behind
    engine.dispose()


def test_a_backup_id_that_is_a_path_is_refused_before_anything_is_read(tmp_path, config):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    with pytest.raises(ConfigurationError, match=re.escape("backup id '../../etc/passwd' is not")):
        service.restore_backup(
            url, config, "../../etc/passwd", target_url=f"sqlite:///{tmp_path}/x.db"
        )


def test_an_unsigned_backup_made_before_the_key_restores_only_when_allowed(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    from sync_platform.warehouse.schema import upgrade_warehouse
    from sync_platform_tests.conftest import all_entities

    engine = create_warehouse_engine(url)
    upgrade_warehouse(engine, all_entities())
    seed(engine)
    engine.dispose()
    folder = tmp_path / "backups"
    before_the_key = service.BackupConfig.from_values(folder, None, allow_unencrypted=True)
    manifest = service.create_backup(url, before_the_key)
    with_key = service.BackupConfig.from_values(folder, KEY)
    target = tmp_path / "restored.db"

    with pytest.raises(BackupIntegrityError, match="pass --allow-unsigned"):
        service.restore_backup(url, with_key, manifest.id, target_url=f"sqlite:///{target}")
    assert not target.exists()
    outcome = service.restore_backup(
        url, with_key, manifest.id, target_url=f"sqlite:///{target}", allow_unsigned=True
    )
    assert figures(f"sqlite:///{target}", list(manifest.table_counts))[0] == manifest.table_counts
    assert outcome.manifest.id == manifest.id


def test_pg_client_server_major_mismatch_is_a_clear_error():
    check_versions("pg_dump", "pg_dump (PostgreSQL) 15.20", 150020)
    with pytest.raises(ConfigurationError, match="PostgreSQL 15 but the server is PostgreSQL 16"):
        check_versions("pg_dump", "pg_dump (PostgreSQL) 15.20", 160004)


def test_backup_without_a_key_is_refused_unless_plain_backups_are_allowed(tmp_path, warehouse_url):
    plain = service.BackupConfig.from_values(tmp_path / "b", None)
    with pytest.raises(ConfigurationError, match="SYNC_PLATFORM_BACKUP_KEY"):
        service.create_backup(warehouse_url, plain)
    plain.allow_unencrypted = True
    manifest = service.create_backup(warehouse_url, plain)
    assert not manifest.encrypted and manifest.key_id is None
    service.verify_backup(warehouse_url, plain, manifest.id)


# --- retention ------------------------------------------------------------------------------------


def test_retention_over_90_days_keeps_exactly_the_expected_set():
    # 2026-08-23 … 2026-11-20: one nightly backup at 03:00, plus a manual one on Nov 18 at
    # 15:00. The last 9 days failed to verify (status created), one day failed outright.
    start = datetime(2026, 8, 23, 3, tzinfo=UTC)
    infos = []
    for day in range(90):
        moment = start + timedelta(days=day)
        status = "created" if day >= 81 else "verified"
        if moment.date() == datetime(2026, 11, 1).date():
            status = "failed"
        infos.append(BackupInfo(f"full-{moment:%m%d}", "full", moment, status))
    infos.append(
        BackupInfo("full-1118-manual", "full", datetime(2026, 11, 18, 15, tzinfo=UTC), "created")
    )
    now = datetime(2026, 11, 20, 4, tzinfo=UTC)
    inbox = [
        BackupInfo(f"inbox-{h}", "inbox", now - timedelta(hours=h), "created") for h in range(100)
    ]
    keep = backups_to_keep(
        infos + inbox, daily=7, weekly=4, monthly=3, inbox_keep_hours=72, now=now
    )
    expected_full = {
        # daily: Nov 14..20 (the manual one is Nov 18's newest)
        "full-1120",
        "full-1119",
        "full-1118-manual",
        "full-1117",
        "full-1116",
        "full-1115",
        "full-1114",
        # weekly (ISO weeks end on Sunday): Nov 16-22 → 1120, Nov 9-15 → 1115, Nov 2-8 → 1108,
        # Oct 26-Nov 1 → 1031 (Nov 1 failed)
        "full-1108",
        "full-1031",
        # monthly: November → 1120, October → 1031, September → 0930
        "full-0930",
        # the newest verified backup (Nov 11), though no bucket keeps it
        "full-1111",
    }
    assert {k for k in keep if k.startswith("full")} == expected_full
    assert {k for k in keep if k.startswith("inbox")} == {f"inbox-{h}" for h in range(73)}


def test_prune_deletes_files_and_marks_rows(warehouse_url, engine, config):
    with engine.begin() as connection:
        set_setting(connection, "backup_keep_daily", "1")
        set_setting(connection, "backup_keep_weekly", "0")
        set_setting(connection, "backup_keep_monthly", "0")
    old = service.create_backup(warehouse_url, config, now=datetime.now(UTC) - timedelta(days=3))
    service.verify_backup(warehouse_url, config, old.id)
    middle = service.create_backup(warehouse_url, config, now=datetime.now(UTC) - timedelta(days=2))
    newest = service.create_backup(warehouse_url, config)
    pruned = service.prune_backups(warehouse_url, config)
    assert pruned == [middle.id]  # the old one is the newest verified: kept
    assert not any(name.startswith(middle.id) for name in config.storage.names())
    assert config.storage.exists(old.file_name) and config.storage.exists(newest.file_name)
    with engine.connect() as connection:
        marked = connection.execute(sa.select(backups.c.id).where(backups.c.pruned_at.isnot(None)))
        assert list(marked.scalars()) == [middle.id]


# --- Dagster ------------------------------------------------------------------------------------


def _definitions(url: str, directory: Path, key: str = KEY) -> dg.Definitions:
    return build_definitions(
        {
            "warehouse": WarehouseResource(url=url),
            "backups": BackupResource(directory=str(directory), key=key),
        }
    )


def test_backup_job_then_restore_drill_under_dagster(tmp_path):
    from sync_platform.warehouse.schema import upgrade_warehouse
    from sync_platform_tests.conftest import all_entities

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = create_warehouse_engine(url)
    upgrade_warehouse(engine, all_entities())
    seed(engine)
    defs = _definitions(url, tmp_path / "backups")
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("backup_warehouse").execute_in_process(
        run_config={"ops": {"create_backup": {"config": {"kind": "full"}}}}, instance=instance
    )
    assert result.success
    created = result.output_for_node("create_backup")
    verified = [e for e in result.get_step_success_events() if e.step_key == "verify_backup"]
    assert verified
    materialized = result.events_for_node("verify_backup")
    metadata = next(
        e for e in materialized if e.event_type_value == "STEP_OUTPUT"
    ).event_specific_data.metadata
    assert metadata["backup_id"].value == created and metadata["restore_seconds"].value >= 0
    with engine.connect() as connection:
        row = connection.execute(sa.select(backups).where(backups.c.id == created)).one()
    assert row.status == "verified" and row.verified_at is not None

    # The drill: an RTO no restore can meet raises restore_drill_slow.
    with engine.begin() as connection:
        set_setting(connection, "restore_rto_minutes", "0.000001")
    drill = defs.resolve_job_def("restore_drill").execute_in_process(instance=instance)
    assert drill.success
    with engine.connect() as connection:
        open_alerts = connection.execute(
            sa.select(sync_alerts.c.type).where(sync_alerts.c.status == "open")
        ).scalars()
        assert "restore_drill_slow" in set(open_alerts)
    engine.dispose()


def test_backup_failure_raises_an_alert(tmp_path):
    from sync_platform.warehouse.schema import upgrade_warehouse
    from sync_platform_tests.conftest import all_entities

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = create_warehouse_engine(url)
    upgrade_warehouse(engine, all_entities())
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the backup directory should be")
    result = (
        _definitions(url, blocked)
        .resolve_job_def("backup_warehouse")
        .execute_in_process(raise_on_error=False, instance=dg.DagsterInstance.ephemeral())
    )
    assert not result.success
    with engine.connect() as connection:
        alert = connection.execute(
            sa.select(sync_alerts).where(sync_alerts.c.dedup_key == "backup_failed:full")
        ).one()
        assert alert.status == "open" and "SYNC_PLATFORM_BACKUP_DIR" in alert.message
    engine.dispose()


def test_schedules_nightly_backup_hourly_inbox_weekly_drill():
    repo = build_definitions().get_repository_def()
    schedules = {s.name: s for s in repo.schedule_defs}
    nightly = schedules["backup_warehouse_nightly"]
    assert (nightly.cron_schedule, nightly.execution_timezone) == ("0 3 * * *", "UTC")
    assert nightly.job_name == "backup_warehouse"
    inbox = schedules["backup_webhook_inbox_hourly"]
    assert inbox.cron_schedule == "30 * * * *" and inbox.execution_timezone == "UTC"
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(instance=instance, scheduled_execution_time=NOW) as context,
    ):
        request = inbox.evaluate_tick(context).run_requests[0]
    assert request.run_config["ops"]["create_backup"]["config"]["kind"] == "inbox"
    drill = schedules["restore_drill_weekly"]
    assert drill.cron_schedule == "0 5 * * 0" and drill.job_name == "restore_drill"
    assert "restore_warehouse" in {job.name for job in repo.get_all_jobs()}


# --- the missing-backup rule ---------------------------------------------------------------


def test_backup_missing_alerts_until_a_verified_backup_exists(engine):
    seed(engine)  # sync runs since NOW - 29 min
    later = NOW + timedelta(hours=27)
    with engine.begin() as connection:
        conditions = {c.dedup_key: c for c in rules.backup_missing(connection, later)}
        assert conditions["backup_missing:full"].holds
        assert conditions["backup_missing:inbox"].holds  # inbox deliveries, no inbox backup
        assert not {c.dedup_key: c for c in rules.backup_missing(connection, NOW)}[
            "backup_missing:full"
        ].holds  # a warehouse younger than the window
        connection.execute(
            sa.insert(backups).values(
                id="full-x",
                kind="full",
                created_at=later - timedelta(hours=1),
                source_database="x",
                dialect="sqlite",
                location="x",
                encrypted=True,
                status="verified",
            )
        )
        connection.execute(
            sa.insert(backups).values(
                id="inbox-x",
                kind="inbox",
                created_at=later - timedelta(minutes=20),
                source_database="x",
                dialect="sqlite",
                location="x",
                encrypted=True,
                status="created",
            )
        )
        conditions = {c.dedup_key: c for c in rules.backup_missing(connection, later)}
    assert not conditions["backup_missing:full"].holds
    assert not conditions["backup_missing:inbox"].holds


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_create_list_verify_restore(tmp_path, monkeypatch):
    from sync_platform.warehouse.schema import upgrade_warehouse
    from sync_platform_tests.conftest import all_entities

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = create_warehouse_engine(url)
    upgrade_warehouse(engine, all_entities())
    seed(engine)
    monkeypatch.setenv("SYNC_PLATFORM_WAREHOUSE_URL", url)
    monkeypatch.setenv("SYNC_PLATFORM_BACKUP_DIR", str(tmp_path / "backups"))
    monkeypatch.delenv("SYNC_PLATFORM_BACKUP_KEY", raising=False)
    runner = CliRunner()

    refused = runner.invoke(app, ["backup", "create"])
    assert refused.exit_code == 2 and "SYNC_PLATFORM_BACKUP_KEY" in refused.output
    monkeypatch.setenv("SYNC_PLATFORM_BACKUP_KEY", KEY)
    created = runner.invoke(app, ["backup", "create"])
    assert created.exit_code == 0, created.output
    assert KEY not in created.output
    backup_id = created.output.split()[1].rstrip(":")

    listed = runner.invoke(app, ["backup", "list"])
    assert (
        backup_id in listed.output and "encrypted" in listed.output and "created" in listed.output
    )
    verified = runner.invoke(app, ["backup", "verify", backup_id])
    assert verified.exit_code == 0 and "verified" in verified.output
    assert "verified" in runner.invoke(app, ["backup", "list"]).output

    live = runner.invoke(app, ["backup", "restore", backup_id, "--target", url])
    assert live.exit_code == 2 and "--overwrite-live" in live.output
    restored = runner.invoke(app, ["backup", "restore", backup_id])
    assert restored.exit_code == 0, restored.output
    new_files = [p for p in tmp_path.glob("warehouse.restore_*.db")]
    assert len(new_files) == 1
    assert figures(f"sqlite:///{new_files[0]}", ["sync_runs"])[0] == {"sync_runs": 30}

    monkeypatch.setenv("SYNC_PLATFORM_BACKUP_KEY", OTHER_KEY)
    wrong = runner.invoke(
        app, ["backup", "restore", backup_id, "--target", f"sqlite:///{tmp_path / 'n.db'}"]
    )
    assert wrong.exit_code == 2 and "encrypted for key" in wrong.output
    assert OTHER_KEY not in wrong.output and not (tmp_path / "n.db").exists()
    engine.dispose()


def test_restore_refuses_an_existing_target_database(pg_database, pg_admin_url, config):
    from sync_platform_tests.conftest import create_database

    manifest = service.create_backup(pg_database, config)
    name = f"{normalize_url(pg_database).database}_existing"
    existing = create_database(pg_admin_url, name)
    try:
        with sa.create_engine(normalize_url(existing)).begin() as connection:
            connection.execute(sa.text("CREATE TABLE keep_me (id int)"))
        with pytest.raises(ConfigurationError, match="already exists"):
            service.restore_backup(pg_database, config, manifest.id, target_url=existing)
        assert figures(existing, ["keep_me"])[0] == {"keep_me": 0}
    finally:
        drop_pg_database(existing)
