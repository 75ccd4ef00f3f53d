"""`python -m demo` (`make demo`): the main job on the embedded default, against the simulator.

It starts the source simulator (sync_platform_simulator) on a free loopback port, plants
realistic faults (malformed vehicles, a 429 with Retry-After, a truncated response, a 503,
dirty ERP values, seller AA12679 silently dropped from one sheet read), runs `dagster job
execute … -j full_sync` exactly as an operator would, lets the Dagster daemon's
`sync_gap_sensor` heal the missing seller, changes the sources and runs the job again,
printing what each sync did (from the audit tables) and which checks passed. In between,
simulated n8n workflows send webhooks (with duplicates and drops) to the receiver: the
daemon's `webhook_inbox_sensor` processes them into event tables and `n8n_gap_resync` brings
back the dropped ones. Then drift is planted on both sides of the dealer feed, the
`dealer_reconciliation_job` finds it and some of it is resolved with `sync-platform
reconcile`. It ends with a verified, encrypted `backup_warehouse` run and the health report.

It imports both the platform and the simulator, so it lives in neither package: run it from
the repository root, as `bench/` is run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import sqlalchemy as sa
import typer

from sync_platform import settings
from sync_platform.config import all_source_configs
from sync_platform.orchestration.runs import stop_waiting_for_runs
from sync_platform.warehouse.connection import create_warehouse_engine, redacted
from sync_platform.warehouse.mart_tables import mart_daily_kpis
from sync_platform.warehouse.platform_tables import (
    sync_alerts,
    sync_gaps,
    sync_runs,
    webhook_inbox,
)
from sync_platform.warehouse.schema import upgrade_warehouse
from sync_platform_simulator.environment import simulator_environment

MAIN_JOB = "full_sync"
BIN = Path(sys.executable).parent
INCIDENT_SELLER = "AA12679"
DEALER_FAULTS = {"rate_limit_next": 1, "retry_after": 1, "truncate_next": 1, "fail_next": 1}
MALFORMED_VEHICLES = {"STK000007": {"VIN": "NOT-A-VIN"}, "STK000011": {"Price": -100}}
DAEMON_WAIT_SECONDS = 180
GA4_DAYS = 7  # of GA4 history the demo syncs (yesterday and the six days before)
WEBHOOKS = {"new_lead": 200, "form_submission": 60, "order_update": 40}
EVENT_TABLES = {
    "new_lead": "webhook_new_leads",
    "form_submission": "webhook_form_submissions",
    "order_update": "webhook_order_updates",
}


def _say(text: str = "") -> None:
    print(text, flush=True)


def reset_sources(control: httpx.Client, seed: int, stock: int, leads: int) -> None:
    """The demo's sources, from the seed, before any fault is planted."""
    control.post(
        "/_sim/reset",
        json={
            "seed": seed,
            "dealer": {"stock": stock, "leads": leads},
            "erp": {"products": 40, "variants": 100, "customers": 60},
            "sheets": {"sellers": 80},
        },
    ).raise_for_status()


def demo_key(home: Path) -> str:
    """The demo's age identity for encrypted backups (made once, kept beside the warehouse,
    never in the repository)."""
    import pyrage

    key_file = home / "demo-backup-key.txt"
    if not key_file.exists():
        key_file.write_text(str(pyrage.x25519.Identity.generate()))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def demo_environment(warehouse_url: str, simulator_url: str, home: Path) -> dict[str, str]:
    """This process's environment plus what points the platform at the simulator and this
    warehouse, with the demo's backup key: what the demo's runs and `make dev` get."""
    history_starts = datetime.now(UTC).date() - timedelta(days=GA4_DAYS)
    return {
        **os.environ,
        settings.WAREHOUSE_URL_ENV: warehouse_url,
        settings.BACKUP_KEY_ENV: demo_key(home),
        # the demo's GA4 history: the days it syncs, so the UI counts none missing before
        "GA4_PARTITION_START": history_starts.isoformat(),
        **simulator_environment(simulator_url),
    }


def _prepare_sources(control: httpx.Client, seed: int, stock: int, leads: int) -> None:
    reset_sources(control, seed, stock, leads)
    items = httpx.get(
        f"{control.base_url}/dealer/api/v1/stock",
        params={"page": 1, "page_size": 1000},
        headers={"X-Api-Key": "sim-dealer-key"},
    ).json()["items"]
    for number, change in MALFORMED_VEHICLES.items():
        original = next(item for item in items if item["StockNumber"] == number)
        control.put(f"/_sim/dealer/stock/{number}", json=original | change).raise_for_status()
    control.post(
        "/_sim/erp/dirty",
        json={"entity": "products", "field": "ListPrice", "kind": "nan", "count": 2},
    ).raise_for_status()
    control.post(
        "/_sim/faults",
        json=DEALER_FAULTS | {"drop_keys": [{"key": INCIDENT_SELLER, "times": 1}]},
    ).raise_for_status()


def _dagster_job(
    job: str, env: dict[str, str], log_path: Path, tags: dict[str, str] | None = None
) -> tuple[bool, float]:
    """`dagster job execute`, exactly as an operator types it; output to a log file."""
    command = [str(BIN / "dagster"), "job", "execute", "-m", "sync_platform.definitions", "-j", job]
    if tags:
        command += ["--tags", json.dumps(tags)]
    started = time.monotonic()
    with log_path.open("w") as log:
        result = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    return result.returncode == 0, time.monotonic() - started


def _ga4_last_days(engine: sa.Engine, env: dict[str, str], home: Path, days: int) -> bool:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    first = yesterday - timedelta(days=days - 1)
    tags = {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": yesterday.isoformat(),
    }
    since = _last_audit_id(engine)
    log_path = home / "demo-ga4.log"
    _say(
        f"\n$ dagster job execute -m sync_platform.definitions -j ga4_daily --tags "
        f"'{json.dumps(tags)}'   (GA4, last {days} days, one run)"
    )
    ok, seconds = _dagster_job("ga4_daily", env, log_path, tags)
    _say(f"  run {'succeeded' if ok else 'FAILED'} in {seconds:.1f}s (log: {log_path})")
    _summarize(engine, since)
    with engine.connect() as connection:
        kpis = connection.execute(
            sa.select(
                mart_daily_kpis.c.date,
                mart_daily_kpis.c.sessions,
                mart_daily_kpis.c.total_users,
                mart_daily_kpis.c.leads_created,
            )
            .order_by(mart_daily_kpis.c.date.desc())
            .limit(3)
        ).all()
    for day, sessions, users, leads in kpis:
        _say(f"  mart_daily_kpis {day}: {sessions} sessions, {users} users, {leads} new leads")
    return ok


def _summarize(engine: sa.Engine, since_id: int) -> None:
    with engine.connect() as connection:
        rows = (
            connection.execute(
                sa.select(sync_runs).where(sync_runs.c.id > since_id).order_by(sync_runs.c.id)
            )
            .mappings()
            .all()
        )
    for row in rows:
        seconds = sum((row["phase_seconds"] or {}).values())
        _say(
            f"  {row['source'] + '.' + row['entity']:<38} {row['trigger']:<9} {row['status']:<9}"
            f" fetched {row['fetched']:>4}  +{row['inserted']:<4} ~{row['updated']:<3}"
            f" -{row['soft_deleted']:<3} quarantined {row['quarantined']:<2}"
            f" gaps {row['gap_count'] or 0}  {seconds:.2f}s"
        )
        if row["message"]:
            _say(f"      note: {row['message'][:300]}")


def _check_summary(job_name: str) -> None:
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name), limit=1)
        if not runs:
            return
        records = instance.get_records_for_run(
            runs[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
    results = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        results.append(
            (evaluation.asset_key.to_user_string(), evaluation.check_name, evaluation.passed)
        )
    passed = sum(1 for *_, ok in results if ok)
    _say(f"  checks: {passed} passed, {len(results) - passed} failed")
    for asset, check, ok in sorted(results):
        if not ok:
            _say(f"    FAILED {asset}:{check}")


def _last_audit_id(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.coalesce(sa.func.max(sync_runs.c.id), 0))
        ).scalar()


def _open_gaps(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(sync_gaps.c.record_key).where(sync_gaps.c.status == "open")
            ).scalars()
        )


def _pending_deliveries(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.count()).where(webhook_inbox.c.status == "pending")
        ).scalar_one()


def _send_webhooks(control: httpx.Client, receiver_url: str, engine: sa.Engine) -> dict:
    """Simulated n8n workflows deliver to the receiver: 10% arrive twice, 5% never."""
    sent = {}
    for workflow, count in WEBHOOKS.items():
        report = control.post(
            "/_sim/n8n/send",
            json={
                "target": receiver_url,
                "workflow_key": workflow,
                "count": count,
                "duplicate_rate": 0.1,
                "drop_rate": 0.05,
                "seed": 7,
            },
            timeout=300,
        ).json()
        sent[workflow] = report
        _say(
            f"  n8n {workflow:<16} {count} executions: {len(report['delivered'])} delivered, "
            f"{len(report['duplicated'])} twice, {len(report['dropped'])} dropped on the way"
        )
    _say(f"  webhook_inbox: {_pending_deliveries(engine)} pending (each delivery stored once)")
    return sent


def _event_counts(engine: sa.Engine, sent: dict) -> None:
    with engine.connect() as connection:
        for workflow, table in EVENT_TABLES.items():
            rows = connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            executions = len(sent[workflow]["executions"])
            _say(f"  {table:<26} {rows:>4} events for {executions} n8n executions")


def _heal_with_the_daemon(engine: sa.Engine, env: dict[str, str], home: Path) -> None:
    """Start the Dagster daemon for a while: sync_gap_sensor launches the resync of missing
    records, webhook_inbox_sensor a processing run for the pending webhook deliveries."""
    gaps = _open_gaps(engine)
    pending = _pending_deliveries(engine)
    if not gaps and not pending:
        return
    _say(
        f"\nopen gaps: {', '.join(gaps) or 'none'}; pending webhook deliveries: {pending} — "
        "starting dagster-daemon so sync_gap_sensor and webhook_inbox_sensor can act"
    )
    since = _last_audit_id(engine)
    log_path = home / "demo-daemon.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-m", "sync_platform.definitions"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + DAEMON_WAIT_SECONDS
            while (_open_gaps(engine) or _pending_deliveries(engine)) and (
                time.monotonic() < deadline
            ):
                time.sleep(2)
            left = _finish_launched_runs(deadline + DAEMON_WAIT_SECONDS)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
    if _open_gaps(engine) or _pending_deliveries(engine):
        _say(f"  still open/pending after {DAEMON_WAIT_SECONDS}s (see {log_path})")
    else:
        _say("  resolved by sensor-launched runs:")
    _summarize(engine, since)
    if left:
        _say(
            f"  {len(left)} run(s) the daemon launched were still going and were cancelled, so "
            f"nothing starts later without the simulator: {', '.join(left)}"
        )


def _finish_launched_runs(deadline: float) -> list[str]:
    """Wait (until `deadline`) for the runs the daemon launched; cancel what is still
    queued or going then. Returns "job (status)" of the cancelled ones."""
    with dg.DagsterInstance.get() as instance:
        return stop_waiting_for_runs(instance, deadline - time.monotonic(), "the demo ended")


def _alert_summary(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        alerts = (
            connection.execute(
                sa.select(sync_alerts)
                .where(sync_alerts.c.status == "open")
                .order_by(sync_alerts.c.id)
            )
            .mappings()
            .all()
        )
    _say(f"\nopen alerts: {len(alerts)}")
    for alert in alerts:
        _say(f"  #{alert['id']} [{alert['severity']}] {alert['type']}: {alert['message'][:160]}")


@contextmanager
def _receiver(simulator_url: str, warehouse_url: str) -> Iterator:
    """The webhook receiver (what `sync-platform receiver` serves, with its keep-alive) on a
    background thread, accepting the simulated n8n workflows with their secrets."""
    from sync_platform.receiver import ReceiverSettings, create_app
    from sync_platform.receiver.server import server_options
    from sync_platform_simulator.background_server import BackgroundServer

    environment = simulator_environment(simulator_url)
    receiver_settings = ReceiverSettings.from_env(environment, warehouse_url=warehouse_url)
    with BackgroundServer(
        create_app(receiver_settings),
        name="receiver",
        timeout_graceful_shutdown=1,
        **server_options(receiver_settings),
    ) as server:
        yield server


def _gap_resync(engine: sa.Engine, env: dict[str, str], home: Path, sent: dict) -> bool:
    since = _last_audit_id(engine)
    log_path = home / "demo-gap-resync.log"
    _say(
        "\n$ dagster job execute -m sync_platform.definitions -j n8n_gap_resync   "
        "(deliveries n8n ran but we never got)"
    )
    ok, seconds = _dagster_job("n8n_gap_resync", env, log_path)
    _say(f"  run {'succeeded' if ok else 'FAILED'} in {seconds:.1f}s (log: {log_path})")
    _summarize(engine, since)
    _event_counts(engine, sent)
    return ok


def _cli(env: dict[str, str], *args: str) -> int:
    """A `sync-platform` command as an operator types it, echoed with its output."""
    _say(f"$ sync-platform {' '.join(args)}")
    result = subprocess.run(
        [str(BIN / "sync-platform"), *args], env=env, capture_output=True, text=True
    )
    _say((result.stdout + result.stderr).strip())
    return result.returncode


def _plant_drift(engine: sa.Engine, control: httpx.Client) -> None:
    """Drift on both sides: the warehouse edited by hand (what a reconciliation is for), and
    the dealer system edited the ordinary way (pending: the next sync brings it)."""
    with engine.begin() as connection:
        run = connection.execute
        vehicles = (
            run(
                sa.text(
                    "SELECT stock_number FROM dealer_stock WHERE status = 'available' "
                    "AND _deleted_at IS NULL ORDER BY stock_number LIMIT 6"
                )
            )
            .scalars()
            .all()
        )
        run(sa.text("UPDATE dealer_stock SET colour = 'Gunmetal' WHERE stock_number IN "
                    "(:a, :b, :c)"), dict(zip("abc", vehicles[:3], strict=True)))  # fmt: skip
        run(sa.text("UPDATE dealer_stock SET price = price + 750 WHERE stock_number IN (:a, :b)"),
            dict(zip("ab", vehicles[3:5], strict=True)))  # fmt: skip
        run(sa.text("DELETE FROM dealer_stock WHERE stock_number = :k"), {"k": vehicles[5]})
        run(sa.text("UPDATE dealer_leads SET status = 'won' WHERE lead_id = "
                    "(SELECT min(lead_id) FROM dealer_leads WHERE status <> 'won')"))  # fmt: skip
    control.post("/_sim/dealer/drift", json={"seed": 7, "stock": {"cosmetic": 2}})
    _say(
        "\ndrift planted: in the warehouse 3 colours and 2 prices edited by hand, 1 vehicle "
        "deleted, 1 lead's status changed; in the dealer system 2 vehicles edited (the next "
        "sync brings those)"
    )


def _reconciliation(engine: sa.Engine, env: dict[str, str], home: Path, control) -> bool:
    """The weekly reconciliation run by hand, then some of what it found resolved by the CLI."""
    _plant_drift(engine, control)
    log_path = home / "demo-reconciliation.log"
    _say("\n$ dagster job execute -m sync_platform.definitions -j dealer_reconciliation_job")
    ok, seconds = _dagster_job("dealer_reconciliation_job", env, log_path)
    _say(f"  run {'succeeded' if ok else 'FAILED'} in {seconds:.1f}s (log: {log_path})")
    if not ok:
        _say(log_path.read_text()[-3000:])
        return False
    _cli(env, "reconcile", "list")
    by = ("--by", "demo-admin")
    _cli(env, "reconcile", "resolve", "take-source", "--severity", "high", *by)
    _cli(env, "reconcile", "resolve", "keep-local", "--field", "price", *by)
    _cli(env, "reconcile", "resolve", "ignore", "--field", "colour", "--reason",
         "paint names differ between the systems", "--days", "30", *by)  # fmt: skip
    _cli(env, "reconcile", "list")
    _say(
        "  (left open: the lead, for a person to decide in the UI's "
        "dealer_reconciliation_resolve job, and the dealer system's own edits, which the next "
        "sync brings)"
    )
    return True


def _backup(env: dict[str, str], home: Path) -> bool:
    """A verified, encrypted backup of the warehouse, as the nightly schedule takes it, with
    the demo's own age key (`demo_key`)."""
    key_file = home / "demo-backup-key.txt"
    log_path = home / "demo-backup.log"
    _say(
        "\n$ dagster job execute -m sync_platform.definitions -j backup_warehouse   "
        f"(encrypted with the demo's age key {key_file})"
    )
    ok, seconds = _dagster_job("backup_warehouse", env, log_path)
    _say(f"  run {'succeeded' if ok else 'FAILED'} in {seconds:.1f}s (log: {log_path})")
    listing = subprocess.run(
        [str(BIN / "sync-platform"), "backup", "list"], env=env, capture_output=True, text=True
    )
    _say("$ sync-platform backup list")
    _say(listing.stdout.strip())
    return ok


def run_demo(stock: int = 300, leads: int = 120, seed: int = 42) -> int:
    from sync_platform_simulator.server import SimulatorServer

    started = time.monotonic()
    url = settings.warehouse_url()
    home = settings.platform_home()
    home.mkdir(parents=True, exist_ok=True)
    _say(f"warehouse: {redacted(url)}")
    engine = create_warehouse_engine(url)
    upgrade_warehouse(engine, [e for s in all_source_configs() for e in s.entities.values()])

    with (
        SimulatorServer() as simulator,
        httpx.Client(base_url=simulator.url) as control,
        _receiver(simulator.url, url) as receiver,
    ):
        _prepare_sources(control, seed, stock, leads)
        _say(
            f"source simulator: {simulator.url} (seed {seed}); planted: dealer faults "
            f"{DEALER_FAULTS}, malformed vehicles {', '.join(MALFORMED_VEHICLES)}, NaN ERP "
            f"prices, seller {INCIDENT_SELLER} dropped from one sheet read"
        )
        env = demo_environment(url, simulator.url, home)
        for attempt, title in enumerate(("first sync", "after the sources changed")):
            if attempt:
                _say(f"\nwebhooks: simulated n8n → receiver {receiver.url}")
                sent = _send_webhooks(control, receiver.url, engine)
                _heal_with_the_daemon(engine, env, home)
                _event_counts(engine, sent)
                if not _gap_resync(engine, env, home, sent):
                    return 1
                control.post("/_sim/dealer/mutate", json={"change": 5, "add": 3, "remove": 2})
                control.post("/_sim/dealer/leads/mutate", json={"change": 4, "add": 6})
                control.post("/_sim/erp/mutate", json={"entity": "products", "change": 3, "add": 1})
                _say(
                    "\nsources changed: 5 vehicles repriced, 3 added, 2 sold; 4 leads updated, "
                    "6 new; 3 ERP products changed, 1 added"
                )
            since = _last_audit_id(engine)
            log_path = home / f"demo-run-{attempt + 1}.log"
            _say(f"\n$ dagster job execute -m sync_platform.definitions -j {MAIN_JOB}   ({title})")
            ok, seconds = _dagster_job(MAIN_JOB, env, log_path)
            _say(f"  run {'succeeded' if ok else 'FAILED'} in {seconds:.1f}s (log: {log_path})")
            _summarize(engine, since)
            _check_summary(MAIN_JOB)
            if not ok:
                _say(log_path.read_text()[-3000:])
                return 1
            if not attempt and not _ga4_last_days(engine, env, home, days=GA4_DAYS):
                return 1
        if not _reconciliation(engine, env, home, control):
            return 1
    if not _backup(env, home):
        return 1
    _alert_summary(engine)
    _say("\n$ sync-platform health")
    health = subprocess.run(
        [str(BIN / "sync-platform"), "health"], env=env, capture_output=True, text=True
    )
    _say(health.stdout.strip())
    verdict = "healthy" if health.returncode == 0 else "needs a look"
    _say(f"  (exit code {health.returncode}: {verdict})")
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    _say(
        f"\nDone in {minutes} min {seconds} s. Look around: `make dev` opens the Dagster UI on "
        "this instance (runs, materializations, checks, sensors); `.venv/bin/sync-platform "
        "runs` lists the audit."
    )
    return 0


def main(
    stock: int = typer.Option(300, help="vehicles in the simulated dealer feed"),
    leads: int = typer.Option(120, help="leads in the simulated dealer feed"),
    seed: int = typer.Option(42, help="simulator seed (same seed, same data)"),
) -> None:
    """Run the main job on the embedded default against the source simulator, twice."""
    raise typer.Exit(code=run_demo(stock=stock, leads=leads, seed=seed))


if __name__ == "__main__":
    typer.run(main)
