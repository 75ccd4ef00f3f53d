"""`python -m soak` (`make soak`): the whole platform under the real daemon, for a while, with
faults on every source, then a verdict.

1. Prepare (soak/stack.py): fresh PostgreSQL databases for Dagster and the warehouse, the
   simulator, the soak's settings; the GA4 history is backfilled once with
   `dagster job execute` (as an operator does when connecting a property).
2. Plant the unrecoverable faults (soak/load.py), turn the fault mix on, start the code
   server, the receiver and `dagster-daemon`, with every schedule and sensor running
   SYNC_PLATFORM_CADENCE_SPEEDUP times faster than in production.
3. Rounds of business change for `--minutes`, sampling the processes' memory.
4. Stop changing and faulting; launch the weekly ERP full sync once (at the soak's speed the
   weekly schedule would not come round); let the platform settle until every entity synced
   since, the inbox is processed and no gap is open (or `--settle-minutes` pass).
5. Wait for the planted faults' alerts (at most ALERT_WAIT_SECONDS more), stop the daemon,
   cancel what is queued, wait for what runs, then judge (soak/verdict.py).
Exit status 0 when the verdict passes.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
import typer

from soak import load, verdict
from soak.stack import Stack
from sync_platform.config import all_source_configs
from sync_platform.orchestration.runs import stop_waiting_for_runs
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.platform_tables import sync_alerts, sync_gaps, sync_runs, webhook_inbox

WARMUP_SECONDS = 300  # memory is compared from here (imports, caches and pools are warm)
LEAK_MIB = 64  # a long-running process that grew more than this …
LEAK_SHARE = 0.25  # … and more than this share of its warm size is leaking
SETTLE_POLL_SECONDS = 10
FINISH_SECONDS = 300
# The most to wait, after settling, for the planted faults' alerts: a failed check is alerted
# by the next alerting sensor tick and the run it launches, which a slow machine takes longer
# to start (the verdict still fails on an alert that never comes).
ALERT_WAIT_SECONDS = 300
GA4_BACKFILL_SECONDS = 900


def _say(text: str = "") -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


def soak_settings(speedup: float) -> dict[str, str]:
    """Runtime settings the soak's compressed day needs (thresholds in minutes shrink with
    the cadence; everything else keeps its production default)."""
    return {
        "gap_resync_backoff_minutes": str(max(0, round(5 / speedup))),
        # two targeted resyncs before a gap is lost (three in production): the planted lost
        # vehicle takes one run fewer to settle on this small machine
        "gap_resync_max_attempts": "2",
    }


def _backfill_ga4(stack: Stack) -> float:
    """Every GA4 day from the first partition to yesterday, in one run."""
    start = min(
        entity.partition_start
        for source in all_source_configs()
        for entity in source.entities.values()
        if entity.partition_start
    )
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    tags = {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": yesterday.isoformat(),
    }
    started = time.monotonic()
    stack.cli(
        "job", "execute", "-m", "sync_platform.definitions", "-j", "ga4_daily",
        "--tags", json.dumps(tags), timeout=GA4_BACKFILL_SECONDS,
    )  # fmt: skip
    return time.monotonic() - started


def _synced_entities(engine: sa.Engine, since: datetime) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.execute(
                sa.select(sync_runs.c.entity).where(
                    sync_runs.c.status.in_(("succeeded", "warning")),
                    sync_runs.c.started_at >= since,
                )
            ).scalars()
        )


def _settled(engine: sa.Engine, since: datetime) -> list[str]:
    """What is still unsettled: entities not synced since `since` (and workflows whose
    delivery gaps were not checked since: a delivery dropped in the last round is found
    only then), pending deliveries, open gaps (empty when the platform is in step)."""
    expected = {
        entity
        for source in all_source_configs()
        if source.source not in ("ga4", "n8n_events")
        for entity in source.entities
    } | set(load.WORKFLOWS)
    waiting = [f"{e} not synced" for e in sorted(expected - _synced_entities(engine, since))]
    with engine.connect() as connection:
        pending = connection.execute(
            sa.select(sa.func.count()).where(webhook_inbox.c.status == "pending")
        ).scalar()
        open_gaps = connection.execute(
            sa.select(sa.func.count()).where(sync_gaps.c.status == "open")
        ).scalar()
    if pending:
        waiting.append(f"{pending} pending deliveries")
    if open_gaps:
        waiting.append(f"{open_gaps} open gaps")
    return waiting


def _unalerted(engine: sa.Engine) -> set[str]:
    """The planted faults' alerts not raised yet."""
    with engine.connect() as connection:
        raised = set(connection.execute(sa.select(sync_alerts.c.dedup_key)).scalars())
    return load.EXPLAINED_ALERTS - raised


def memory_figures(samples: list[tuple[float, dict[str, float]]]) -> dict[str, dict]:
    """Per process: RSS when warm (the first sample after WARMUP_SECONDS, else the first),
    at the end, and at its peak, in MiB."""
    if not samples:
        return {}
    warm_at = next((i for i, (t, _) in enumerate(samples) if t >= WARMUP_SECONDS), 0)
    figures = {}
    for name in samples[0][1]:
        series = [sizes.get(name, 0.0) for _, sizes in samples]
        warm, last = series[warm_at], series[-1]
        figures[name] = {
            "warm_mib": round(warm, 1),
            "end_mib": round(last, 1),
            "peak_mib": round(max(series), 1),
            "grew_mib": round(last - warm, 1),
        }
    return figures


def run_soak(
    minutes: float,
    *,
    speedup: float = 24,
    round_seconds: float = 60,
    settle_minutes: float = 15,
    seed: int = 42,
    workdir: Path,
    keep: bool = False,
    admin_url: str | None = None,
) -> verdict.Verdict:
    began = time.monotonic()
    stack = Stack.prepare(
        workdir,
        speedup=speedup,
        seed=seed,
        settings_=soak_settings(speedup),
        keep=keep,
        admin_url=admin_url,
    )
    engine = create_warehouse_engine(stack.warehouse_url)
    samples: list[tuple[float, dict[str, float]]] = []
    ledger = load.Ledger()
    figures: dict = {"minutes": minutes, "speedup": speedup, "seed": seed}
    try:
        control = httpx.Client(base_url=stack.simulator.url, timeout=60)
        load.reset_sources(control, seed)
        _say(f"prepared in {workdir}; backfilling GA4 (dagster job execute -j ga4_daily)")
        figures["ga4_backfill_seconds"] = round(_backfill_ga4(stack), 1)
        planted = load.plant(control)
        requests_before = load.source_requests(control)
        stack.launch()
        load.plant_lost_delivery(control, stack.receiver_url, planted)
        _say(f"running under the daemon for {minutes:g} min at {speedup:g}x; planted {planted}")
        rng = random.Random(seed)
        started = time.monotonic()
        while time.monotonic() - started < minutes * 60:
            round_began = time.monotonic()
            load.one_round(control, stack.receiver_url, ledger, planted, rng)
            samples.append((time.monotonic() - started, stack.sample_memory()))
            if dead := stack.dead():
                raise RuntimeError(f"{', '.join(dead)} exited (see {workdir}/*.log)")
            time.sleep(max(0.0, round_seconds - (time.monotonic() - round_began)))
        figures["faults_injected"] = load.faults_injected(control)
        figures["source_requests_under_faults"] = load.source_requests(control) - requests_before
        load.stop_changing(control, planted)
        settle_from = datetime.now(UTC)
        stack.cli(
            "job", "launch", "-w", "deploy/production/workspace.yaml",
            "-j", "legacy_erp_full_sync", "--tags", json.dumps({"sync_platform/trigger": "soak"}),
        )  # fmt: skip
        _say(f"{ledger.rounds} rounds done; settling (at most {settle_minutes:g} min)")
        deadline = time.monotonic() + settle_minutes * 60
        waiting = _settled(engine, settle_from)
        while waiting and time.monotonic() < deadline:
            time.sleep(SETTLE_POLL_SECONDS)
            waiting = _settled(engine, settle_from)
        figures["settle_seconds"] = round(time.monotonic() - deadline + settle_minutes * 60, 1)
        if waiting:
            _say(f"not settled: {', '.join(waiting)}")
        time.sleep(max(30.0, 120 / speedup * 2))  # one more alerting cycle after the last sync
        alert_deadline = time.monotonic() + ALERT_WAIT_SECONDS
        while _unalerted(engine) and time.monotonic() < alert_deadline:
            time.sleep(SETTLE_POLL_SECONDS)
        samples.append((time.monotonic() - started, stack.sample_memory()))
        stack.stop_daemon()
        with stack.instance() as instance:
            left = stop_waiting_for_runs(
                instance, FINISH_SECONDS, "the soak ended", cancel_queued=True
            )
            judged = verdict.Verdict()
            if waiting:
                judged.fail(f"the platform did not settle: {', '.join(waiting)}")
            if left:
                judged.fail(f"runs still going after {FINISH_SECONDS}s: {', '.join(left)}")
            verdict.compare_entities(control, engine, planted, judged)
            verdict.compare_inbox(engine, ledger, planted, judged)
            verdict.check_planted(engine, planted, judged)
            verdict.check_dagster(instance, judged)
        memory = memory_figures(samples)
        with engine.connect() as connection:
            syncs = dict(
                connection.execute(
                    sa.select(sync_runs.c.source, sa.func.count()).group_by(sync_runs.c.source)
                ).all()
            )
        if minutes * 60 > WARMUP_SECONDS * 2:
            for name, sizes in memory.items():
                if sizes["grew_mib"] > max(LEAK_MIB, LEAK_SHARE * sizes["warm_mib"]):
                    judged.fail(f"{name} grew {sizes['grew_mib']} MiB after warming up")
        judged.figures |= figures | {
            "rounds": ledger.rounds,
            "entity_syncs": sum(syncs.values()),
            "entity_syncs_by_source": syncs,
            "changes": dict(ledger.changes),
            "webhooks_dropped_on_the_way": ledger.dropped,
            "webhooks_sent_twice": ledger.duplicated,
            "memory": memory,
            "wall_seconds": round(time.monotonic() - began, 1),
        }
        (workdir / "report.json").write_text(
            json.dumps({"passed": judged.passed, **asdict(judged)}, indent=2, default=str)
        )
        return judged
    finally:
        engine.dispose()
        stack.stop()


def main(
    minutes: float = typer.Option(60, help="minutes of changes and faults under the daemon"),
    speedup: float = typer.Option(24, help="schedules and sensors run this many times faster"),
    round_seconds: float = typer.Option(60, help="seconds between rounds of source changes"),
    settle_minutes: float = typer.Option(15, help="most minutes to wait for the platform"),
    seed: int = typer.Option(42, help="simulator and fault seed"),
    workdir: str = typer.Option(".soak", help="logs, DAGSTER_HOME and report.json"),
    keep: bool = typer.Option(False, help="keep the PostgreSQL databases afterwards"),
) -> None:
    judged = run_soak(
        minutes,
        speedup=speedup,
        round_seconds=round_seconds,
        settle_minutes=settle_minutes,
        seed=seed,
        workdir=Path(workdir).resolve(),
        keep=keep,
    )
    _say(json.dumps(judged.figures, indent=2, default=str))
    for problem in judged.problems:
        _say(f"FAIL {problem}")
    _say("PASSED" if judged.passed else f"FAILED ({len(judged.problems)} problem(s))")
    raise typer.Exit(0 if judged.passed else 1)


if __name__ == "__main__":
    typer.run(main)
