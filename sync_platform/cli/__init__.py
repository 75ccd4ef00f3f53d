"""`sync-platform`: the operator's command line.

Warehouse schema, runtime config, alerts, health, the webhook receiver, backups; the sync
history (`cli/runs.py`) and reconciliation (`cli/reconcile.py`) in their own modules, the
helpers they share in `cli/shared.py`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import sqlalchemy as sa
import typer

from sync_platform import settings
from sync_platform.cli.reconcile import conflicts_app, reconcile_app
from sync_platform.cli.runs import runs
from sync_platform.cli.shared import fail, reported, warehouse_engine
from sync_platform.config import all_source_configs
from sync_platform.errors import SyncError
from sync_platform.warehouse.connection import redacted

app = typer.Typer(help="Operate the sync platform.", no_args_is_help=True)
db_app = typer.Typer(help="Warehouse schema.", no_args_is_help=True)
config_app = typer.Typer(
    help="Runtime thresholds (applied without a restart).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(conflicts_app, name="conflicts")
app.command("runs")(runs)

REPO_SQL = Path(__file__).resolve().parents[2] / "sql" / "postgres" / "schema.sql"


def _entities() -> list:
    return [entity for source in all_source_configs() for entity in source.entities.values()]


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the warehouse tables (platform migrations, then entity tables)."""
    from sync_platform.warehouse.schema import upgrade_warehouse

    try:
        done = upgrade_warehouse(warehouse_engine(), _entities())
    except (SyncError, sa.exc.SQLAlchemyError) as exc:
        fail(exc)
    typer.echo(f"warehouse {redacted(settings.warehouse_url())}")
    for line in done:
        typer.echo(f"  {line}")


@db_app.command("ddl")
def db_ddl(
    write: bool = typer.Option(False, help=f"write to {REPO_SQL} instead of stdout"),
) -> None:
    """Print the PostgreSQL DDL of every table (what sql/postgres/schema.sql holds)."""
    from sync_platform.warehouse.schema import postgres_ddl

    ddl = postgres_ddl(_entities())
    if write:
        REPO_SQL.parent.mkdir(parents=True, exist_ok=True)
        REPO_SQL.write_text(ddl)
        typer.echo(f"wrote {REPO_SQL}")
    else:
        sys.stdout.write(ddl)


def _declare_settings() -> None:
    """Load the code location: each feature declares its runtime settings where it lives."""
    from sync_platform.definitions import build_definitions

    build_definitions()


@config_app.command("list")
def config_list() -> None:
    """Every runtime setting with its current value and meaning."""
    from sync_platform.runtime_config import all_settings, known_settings

    _declare_settings()
    with warehouse_engine().connect() as connection:
        values = all_settings(connection)
    for key, value in values.items():
        typer.echo(f"{key} = {value}    # {known_settings()[key].description}")


@config_app.command("get")
def config_get(key: str) -> None:
    from sync_platform.runtime_config import get_setting

    _declare_settings()
    try:
        with warehouse_engine().connect() as connection:
            typer.echo(get_setting(connection, key))
    except SyncError as exc:
        fail(exc)


@config_app.command("set")
def config_set(key: str, value: str, by: str = typer.Option("cli", help="who changed it")) -> None:
    """Validate and store a setting; the next sync or sensor tick uses it."""
    from sync_platform.runtime_config import set_setting

    _declare_settings()
    try:
        with warehouse_engine().begin() as connection:
            stored = set_setting(connection, key, value, updated_by=by)
    except SyncError as exc:
        fail(exc)
    typer.echo(f"{key} = {stored}")


alerts_app = typer.Typer(help="Alerts: list and acknowledge.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("list")
def alerts_list(
    show_all: bool = typer.Option(False, "--all", help="resolved alerts too"),
    as_json: bool = typer.Option(False, "--json"),
    limit: int = 50,
) -> None:
    """Open alerts (newest first), with severity, type and message."""
    from sync_platform.warehouse.platform_tables import sync_alerts

    query = sa.select(sync_alerts).order_by(sync_alerts.c.id.desc()).limit(limit)
    if not show_all:
        query = query.where(sync_alerts.c.status == "open")
    with warehouse_engine().connect() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=2))
        return
    if not rows:
        typer.echo("no open alerts" if not show_all else "no alerts")
    for row in rows:
        acked = f", acknowledged by {row['acknowledged_by']}" if row["acknowledged_at"] else ""
        typer.echo(
            f"#{row['id']} [{row['severity']}] {row['type']} ({row['status']}, "
            f"x{row['occurrences']}{acked}) {row['created_at']:%Y-%m-%d %H:%M}\n"
            f"    {row['message']}"
        )


@alerts_app.command("ack")
def alerts_ack(
    alert_id: int, by: str = typer.Option(..., "--by", help="who is taking care of it")
) -> None:
    """Acknowledge an alert: it stays open until its condition clears, but is not re-sent."""
    from sync_platform.alerting.store import acknowledge

    with warehouse_engine().begin() as connection:
        done = acknowledge(connection, alert_id, by)
    if not done:
        fail(SyncError(f"alert #{alert_id} does not exist or is already acknowledged"))
    typer.echo(f"alert #{alert_id} acknowledged by {by}")


@app.command("health")
def health(as_json: bool = typer.Option(False, "--json")) -> None:
    """The platform's health; exits 1 when it is unhealthy (for probes and cron), and the
    verdict line says why: each unhealthy entity and each open high alert."""
    from sync_platform.alerting.health import as_markdown, health_report
    from sync_platform.definitions import build_definitions
    from sync_platform.defs.ops.health import schedules_by_source
    from sync_platform.orchestration.configuration import unconfigured_sources

    repository = build_definitions().get_repository_def()
    with reported(), warehouse_engine().connect() as connection:
        report = health_report(
            connection,
            all_source_configs(),
            schedules_by_source(repository),
            not_configured=unconfigured_sources(repository),
        )
    typer.echo(json.dumps(report, indent=2, default=str) if as_json else as_markdown(report))
    raise typer.Exit(code=0 if report["healthy"] else 1)


@app.command("receiver")
def receiver(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8780, help="port to listen on"),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes (PostgreSQL: 2)"),
    log_level: str = typer.Option("info", help="uvicorn log level (debug adds an access log)"),
) -> None:
    """Serve the n8n webhook receiver (POST /webhooks/n8n/<workflow>, /healthz, /metrics).

    Deliveries are committed to the warehouse inbox before any 2xx. Secrets come from
    N8N_WEBHOOK_SECRET_<WORKFLOW>; see docs/sources/n8n.md.
    """
    from sync_platform.receiver.server import serve

    try:
        serve(host=host, port=port, workers=workers, log_level=log_level)
    except SyncError as exc:
        fail(exc)


backup_app = typer.Typer(
    help="Backups: list, create, verify, restore, prune (docs/backup_and_recovery.md).",
    no_args_is_help=True,
)
app.add_typer(backup_app, name="backup")


def _backup_config():
    from sync_platform.backups.service import BackupConfig

    return BackupConfig.from_env()


@backup_app.command("list")
def backup_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every backup in the backup directory (newest first) with its recorded status."""
    from sync_platform.backups.service import list_backups

    try:
        rows = list_backups(settings.warehouse_url(), _backup_config())
    except SyncError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=2))
        return
    if not rows:
        typer.echo(f"no backups in {settings.backup_dir()}")
    for row in rows:
        if row["status"] == "unreadable":
            typer.echo(f"{row['id']}  unreadable: {row['error']}")
            continue
        verified = f", restore {row['restore_seconds']:.2f} s" if row["restore_seconds"] else ""
        missing = "" if row["file_present"] else "  FILE MISSING"
        typer.echo(
            f"{row['id']}  {row['kind']}  {row['created_at']:%Y-%m-%d %H:%M} UTC  "
            f"{row['size_bytes']:,} bytes  {row['rows']:,} rows  "
            f"{'encrypted' if row['encrypted'] else 'PLAIN'}  {row['status']}{verified}{missing}"
        )


@backup_app.command("create")
def backup_create(
    kind: str = typer.Option("full", help="full (the warehouse) or inbox (webhook inbox)"),
) -> None:
    """Take a backup now (then verify it with `backup verify ID`)."""
    from sync_platform.backups.service import create_backup

    try:
        manifest = create_backup(settings.warehouse_url(), _backup_config(), kind)
    except SyncError as exc:
        fail(exc)
    typer.echo(
        f"backup {manifest.id}: {manifest.size_bytes:,} bytes, "
        f"{sum(manifest.table_counts.values()):,} rows in {len(manifest.table_counts)} tables, "
        f"{manifest.backup_seconds}s"
    )


@backup_app.command("verify")
def backup_verify(backup_id: str) -> None:
    """Restore into a throwaway database and compare every table with the manifest."""
    from sync_platform.backups.service import verify_backup

    try:
        outcome = verify_backup(settings.warehouse_url(), _backup_config(), backup_id)
    except SyncError as exc:
        fail(exc)
    typer.echo(
        f"backup {backup_id} verified: {len(outcome.manifest.table_counts)} tables match the "
        f"manifest; restore took {outcome.restore_seconds:.2f} s"
    )


@backup_app.command("restore")
def backup_restore(
    backup_id: str,
    target: str | None = typer.Option(
        None, "--target", help="database URL to restore into (default: a new database)"
    ),
    overwrite_live: bool = typer.Option(
        False, "--overwrite-live", help="replace the live warehouse (stop Dagster first)"
    ),
    allow_unsigned: bool = typer.Option(
        False,
        "--allow-unsigned",
        help="restore a backup whose manifest is not signed with the configured key (made "
        "before the key was configured); check where it came from first",
    ),
) -> None:
    """Restore a backup; never over the live warehouse unless --overwrite-live."""
    from sync_platform.backups.service import restore_backup

    try:
        outcome = restore_backup(
            settings.warehouse_url(),
            _backup_config(),
            backup_id,
            target_url=target,
            overwrite_live=overwrite_live,
            allow_unsigned=allow_unsigned,
        )
    except SyncError as exc:
        fail(exc)
    typer.echo(
        f"backup {backup_id} restored into {outcome.target} in {outcome.restore_seconds}s; "
        f"{len(outcome.manifest.table_counts)} tables match the manifest"
    )


@backup_app.command("prune")
def backup_prune() -> None:
    """Delete the backups retention does not keep (the newest verified one always stays)."""
    from sync_platform.backups.service import prune_backups

    try:
        pruned = prune_backups(settings.warehouse_url(), _backup_config())
    except SyncError as exc:
        fail(exc)
    typer.echo(f"pruned {len(pruned)} backup(s)" + (f": {', '.join(pruned)}" if pruned else ""))
