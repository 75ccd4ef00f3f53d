"""`sync-platform demo`: the main job on the embedded default, against the simulator.

It starts the bundled source simulator on a free loopback port, plants a few realistic
faults (two malformed vehicles, a 429 with Retry-After, a truncated response, a 503), runs
`dagster job execute … -j full_sync` exactly as an operator would, changes the source and
runs it again, then prints what each sync did from the audit tables and which checks
passed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import sqlalchemy as sa

from sync_platform import settings
from sync_platform.config import all_source_configs
from sync_platform.warehouse.connection import create_warehouse_engine, redacted
from sync_platform.warehouse.platform_tables import sync_runs
from sync_platform.warehouse.schema import upgrade_warehouse

MAIN_JOB = "full_sync"
DEMO_FAULTS = {"rate_limit_next": 1, "retry_after": 1, "truncate_next": 1, "fail_next": 1}
MALFORMED = {
    "STK000007": {"VIN": "NOT-A-VIN"},
    "STK000011": {"Price": -100},
}


def _say(text: str = "") -> None:
    print(text, flush=True)


def _plant_malformed(control: httpx.Client, base: str) -> None:
    """Overwrite two vehicles with values the schema refuses."""
    for stock_number, change in MALFORMED.items():
        record = httpx.get(
            f"{base}/dealer/api/v1/stock",
            params={"page": 1, "page_size": 1000},
            headers={"X-Api-Key": "sim-dealer-key"},
        ).json()["items"]
        original = next(item for item in record if item["StockNumber"] == stock_number)
        control.put(f"/_sim/dealer/stock/{stock_number}", json=original | change).raise_for_status()


def _run_job(env: dict[str, str], log_path: Path) -> tuple[bool, float]:
    started = time.monotonic()
    with log_path.open("w") as log:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "dagster"),
                "job",
                "execute",
                "-m",
                "sync_platform.definitions",
                "-j",
                MAIN_JOB,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return result.returncode == 0, time.monotonic() - started


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
            f"  {row['source']}.{row['entity']:<14} {row['status']:<9} fetched {row['fetched']:>4}"
            f"  +{row['inserted']:<4} ~{row['updated']:<3} ={row['unchanged']:<4}"
            f" -{row['soft_deleted']:<3} quarantined {row['quarantined']:<2}"
            f" gaps {row['gap_count'] or 0}  {seconds:.2f}s"
        )
        if row["message"]:
            _say(f"      note: {row['message']}")


def _check_summary() -> None:
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=MAIN_JOB), limit=1)
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


def run_demo(stock: int = 300, leads: int = 120, seed: int = 42) -> int:
    from sync_platform.simulator.server import SimulatorServer

    url = settings.warehouse_url()
    home = settings.platform_home()
    home.mkdir(parents=True, exist_ok=True)
    _say(f"warehouse: {redacted(url)}")
    engine = create_warehouse_engine(url)
    upgrade_warehouse(engine, [e for s in all_source_configs() for e in s.entities.values()])

    with SimulatorServer() as simulator, httpx.Client(base_url=simulator.url) as control:
        control.post(
            "/_sim/reset", json={"seed": seed, "dealer": {"stock": stock, "leads": leads}}
        ).raise_for_status()
        _plant_malformed(control, simulator.url)
        control.post("/_sim/faults", json=DEMO_FAULTS).raise_for_status()
        _say(
            f"source simulator: {simulator.url} (seed {seed}; faults: {DEMO_FAULTS}; "
            f"malformed vehicles: {', '.join(MALFORMED)})"
        )
        env = {
            **os.environ,
            settings.WAREHOUSE_URL_ENV: url,
            settings.DEALER_FEED_BASE_URL_ENV: f"{simulator.url}/dealer",
            settings.DEALER_FEED_API_KEY_ENV: "sim-dealer-key",
        }
        for attempt, title in enumerate(("first sync", "after the source changed")):
            if attempt:
                changed = control.post(
                    "/_sim/dealer/mutate", json={"change": 5, "add": 3, "remove": 2}
                ).json()
                control.post("/_sim/dealer/leads/mutate", json={"change": 4, "add": 6})
                _say(
                    f"\nsource changed: {len(changed['changed'])} vehicles repriced, "
                    f"{len(changed['added'])} added, {len(changed['removed'])} sold off the feed; "
                    "4 leads updated, 6 new"
                )
            since = _last_audit_id(engine)
            log_path = home / f"demo-run-{attempt + 1}.log"
            _say(f"\n$ dagster job execute -m sync_platform.definitions -j {MAIN_JOB}   ({title})")
            ok, seconds = _run_job(env, log_path)
            _say(f"  run {'succeeded' if ok else 'FAILED'} in {seconds:.1f}s (log: {log_path})")
            _summarize(engine, since)
            _check_summary()
            if not ok:
                _say(log_path.read_text()[-3000:])
                return 1
    _say(
        "\nDone. Look around: `make dev` opens the Dagster UI on this instance "
        "(runs, materializations, checks); `.venv/bin/sync-platform runs` lists the audit."
    )
    return 0
