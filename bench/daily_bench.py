"""A realistic day, end to end through Dagster: every source at a daily size against the
simulator, a first load and then a "day later" re-sync with ~1% of each source changed, each
source's job run as an operator runs it (`dagster job execute -m sync_platform.definitions
-j <job>`, a fresh process) on a throwaway PostgreSQL warehouse and a throwaway DAGSTER_HOME
(Dagster's storage in PostgreSQL, or SQLite). Figures, not a test, but it fails when a sync
fails or when the warehouse does not hold what the simulator does after a pass.

Per job: wall seconds, the entities' own seconds from the audit (`sync_runs`), rows, the
seconds the simulator spent serving its requests, and the peak RSS of the run's processes
(the `dagster job execute` process and everything under it, sampled with psutil every
0.2 s: the largest single process and the largest sum).

    python -m bench.daily_bench [--scale 1.0] [--dagster-storage postgresql|sqlite]
                                [--write-docs] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import psutil
import sqlalchemy as sa

from bench.databases import server_version, throwaway_database
from bench.performance_doc import DOCS, write_section
from demo.__main__ import _receiver, demo_environment
from sync_platform.config import all_source_configs, cached_source_config
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.platform_tables import sync_runs, webhook_inbox
from sync_platform.warehouse.schema import upgrade_warehouse
from sync_platform_simulator.app import create_app
from sync_platform_simulator.background_server import BackgroundServer
from sync_platform_simulator.state import SimulatorState

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START, END = "<!-- daily-bench:start -->", "<!-- daily-bench:end -->"
SEED = 42
GA4_DAYS = 3  # the window each GA4 run pulls: yesterday and the two days before
SESSIONS_PER_LANDING_PAGE = 45  # enough for the least popular page to have a session a day
CHANGED = 0.01  # of each source, the "day later"
# Deliveries per workflow, in the demo's proportions (new leads the most).
WEBHOOK_SHARES = {"new_lead": 200, "form_submission": 60, "order_update": 40}
EVENT_TABLES = {
    "new_lead": "webhook_new_leads",
    "form_submission": "webhook_form_submissions",
    "order_update": "webhook_order_updates",
}
RESYNC_TARGET_SECONDS = 120.0
PEAK_TARGET_MB = 1536.0
SAMPLE_SECONDS = 0.2
SEND_AT_ONCE = 5_000  # n8n executions a send starts together


@dataclass(frozen=True)
class Sizes:
    """A day's sizes at scale 1.0, multiplied by `--scale`."""

    stock: int
    leads: int
    products: int
    variants: int
    customers: int
    sellers: int
    landing_pages: int  # = GA4 rows a day of the landing-page report
    webhooks: int

    @classmethod
    def at(cls, scale: float) -> Sizes:
        def n(full: int, least: int = 1) -> int:
            return max(least, round(full * scale))

        return cls(
            stock=n(50_000),
            leads=n(200_000),
            products=n(250_000),  # 1M products and variants together, 3 variants a product
            variants=n(750_000),
            customers=n(200_000),
            sellers=n(5_000),
            landing_pages=n(10_000, least=7),
            webhooks=n(50_000, least=3),
        )


# -- measuring ------------------------------------------------------------------------------


class ServingTimes:
    """ASGI middleware around the simulator: seconds spent answering, and requests, by the
    first path segment (dealer, erp, sheets, ga4, google, n8n). The simulator's own time inside
    a job's wall time; everything else there is the platform's."""

    def __init__(self, app):
        self.app = app
        self.seconds: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        source = scope["path"].split("/", 2)[1]
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.seconds[source] += time.perf_counter() - started
            self.requests[source] += 1

    def snapshot(self) -> tuple[float, int]:
        return sum(self.seconds.values()), sum(self.requests.values())


class TreeSampler:
    """Samples the memory of a process and all its descendants every 0.2 s on a thread: the
    largest RSS of a single process (and what it was), and the largest sums of one sample's
    RSS and PSS. Forked step processes share their parent's pages, which the RSS sum counts
    once per process; the PSS sum shares them out, so it is what the run really held."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self.peaks: dict[int, tuple[int, str]] = {}
        self.peak_sum = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _describe(self, process: psutil.Process) -> str:
        if process.pid == self.root.pid:
            return "dagster job execute"
        try:
            command = " ".join(process.cmdline())
        except psutil.Error:
            return "child"
        if "forkserver" in command:
            return "step (forked)" if process.ppid() != self.root.pid else "forkserver"
        return "child: " + command[:60]

    def sample(self) -> None:
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        total = proportional = 0
        for process in processes:
            try:
                memory = process.memory_full_info()
            except psutil.Error:
                continue
            total += memory.rss
            proportional += memory.pss
            if memory.rss > self.peaks.get(process.pid, (0, ""))[0]:
                self.peaks[process.pid] = (memory.rss, self._describe(process))
        self.peak_sum = max(self.peak_sum, total)
        self.peak_pss = max(self.peak_pss, proportional)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def __enter__(self) -> TreeSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_single(self) -> tuple[int, str]:
        return max(self.peaks.values(), default=(0, ""))


@dataclass
class JobResult:
    pass_name: str
    source: str
    job: str
    wall: float = 0.0
    own: float = 0.0
    syncs: int = 0
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    quarantined: int = 0
    simulator_seconds: float = 0.0
    simulator_requests: int = 0
    peak_single_mb: float = 0.0
    peak_single_what: str = ""
    peak_sum_mb: float = 0.0
    peak_pss_mb: float = 0.0
    processes: int = 0
    runs: int = 0
    before_run: float = 0.0  # process start → run start: CLI, code location, run created
    to_first_step: float = 0.0  # run start → first step started: executor, step process
    in_steps: float = 0.0  # first step → run end, while at least one step was executing
    between_steps: float = 0.0  # first step → run end, while none was
    after_run: float = 0.0  # run end → process exit
    phases: Counter = field(default_factory=Counter)  # the syncs' phase seconds, summed
    statuses: Counter = field(default_factory=Counter)
    note: str = ""

    SUMMED = ("wall", "own", "syncs", "fetched", "inserted", "updated", "deleted",
              "quarantined", "simulator_seconds", "simulator_requests", "before_run",
              "to_first_step", "in_steps", "between_steps", "after_run")  # fmt: skip

    def add(self, run: JobResult) -> None:
        """Another run of the same job into this result: times and rows add up, peaks are
        the highest."""
        for name in self.SUMMED:
            setattr(self, name, getattr(self, name) + getattr(run, name))
        if run.peak_single_mb > self.peak_single_mb:
            self.peak_single_mb, self.peak_single_what = run.peak_single_mb, run.peak_single_what
        self.peak_sum_mb = max(self.peak_sum_mb, run.peak_sum_mb)
        self.peak_pss_mb = max(self.peak_pss_mb, run.peak_pss_mb)
        self.processes = max(self.processes, run.processes)
        self.statuses.update(run.statuses)
        self.phases.update(run.phases)
        self.runs += 1


# -- the environment ----------------------------------------------------------------------------


@contextmanager
def work_directory(keep: bool) -> Iterator[Path]:
    """A temporary folder for the platform's home, DAGSTER_HOME and the job logs: removed
    afterwards, unless `keep` or the bench failed (its logs say why)."""
    folder = Path(tempfile.mkdtemp(prefix="daily-bench-"))
    try:
        yield folder
    except BaseException:
        print(f"logs kept in {folder / 'logs'}")
        raise
    if keep:
        print(f"kept {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


def write_instance(dagster_home: Path, dagster_db_url: str | None) -> None:
    """The repository's embedded-default dagster.yaml, with Dagster's storage in its own
    PostgreSQL database when one is given (as deploy/production/dagster.yaml has it)."""
    text = (ROOT / "dagster.yaml").read_text()
    if dagster_db_url:
        url = sa.make_url(dagster_db_url)
        storage = f"""storage:
  postgres:
    postgres_db:
      scheme: postgresql+psycopg2
      hostname: {url.host or "127.0.0.1"}
      port: {url.port or 5432}
      username: {url.username or "postgres"}
      password: "{url.password or ""}"
      db_name: {url.database}

"""
        text = storage + text
    (dagster_home / "dagster.yaml").write_text(text)


@contextmanager
def simulator() -> Iterator[tuple[BackgroundServer, SimulatorState, ServingTimes]]:
    """The simulator on a background thread of this process (as the demo and the other
    benches run it), its requests timed."""
    state = SimulatorState()
    timed = ServingTimes(create_app(state))
    server = BackgroundServer(timed, name="simulator", lifespan="off", timeout_graceful_shutdown=1)
    with server:
        yield server, state, timed


def reset_simulator(control: httpx.Client, sizes: Sizes, today: date) -> float:
    """The day's sources from the seed, through the control API; seconds it took."""
    sessions = sizes.landing_pages * SESSIONS_PER_LANDING_PAGE
    body = {
        "seed": SEED,
        "dealer": {"stock": sizes.stock, "leads": sizes.leads},
        "erp": {"products": sizes.products, "variants": sizes.variants,
                "customers": sizes.customers},
        "sheets": {"sellers": sizes.sellers},
        "ga4": {"today": today.isoformat(), "landing_pages": sizes.landing_pages,
                "properties": [{"sessions_per_day": sessions}]},
    }  # fmt: skip
    started = time.monotonic()
    control.post("/_sim/reset", json=body, timeout=None).raise_for_status()
    return time.monotonic() - started


# -- running jobs ---------------------------------------------------------------------------------


def _pending(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        pending = sa.select(sa.func.count()).where(webhook_inbox.c.status == "pending")
        return connection.execute(pending).scalar_one()


def _last_audit_id(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        latest = sa.select(sa.func.coalesce(sa.func.max(sync_runs.c.id), 0))
        return connection.execute(latest).scalar_one()


@dataclass(frozen=True)
class Timeline:
    """One run as Dagster's own storage saw it (epoch seconds): when it started, when its
    first step started, when it ended, and how long at least one step was executing."""

    run_start: float
    first_step: float
    run_end: float
    in_steps: float


def _timeline(instance: dg.DagsterInstance, job: str) -> Timeline:
    (record,) = instance.get_run_records(filters=dg.RunsFilter(job_name=job), limit=1)
    run_id = record.dagster_run.run_id

    def stamps(kind: dg.DagsterEventType) -> dict[str, float]:
        records = instance.get_records_for_run(run_id, of_type=kind).records
        return {r.event_log_entry.step_key: r.event_log_entry.timestamp for r in records}

    starts = stamps(dg.DagsterEventType.STEP_START)
    ends = stamps(dg.DagsterEventType.STEP_SUCCESS) | stamps(dg.DagsterEventType.STEP_FAILURE)
    spans = sorted((start, ends.get(step, record.end_time)) for step, start in starts.items())
    in_steps, reached = 0.0, 0.0
    for start, end in spans:  # the union of the steps' spans
        start = max(start, reached)
        if end > start:
            in_steps += end - start
            reached = end
    first_step = spans[0][0] if spans else record.end_time
    return Timeline(record.start_time, first_step, record.end_time, in_steps)


@dataclass
class Bench:
    """What every run of a job needs: its environment, where its log goes, the warehouse,
    the simulator's timing and control API, Dagster's instance, the receiver."""

    env: dict[str, str]
    logs: Path
    engine: sa.Engine
    timing: ServingTimes
    instance: dg.DagsterInstance
    control: httpx.Client
    receiver_url: str


def run_job(
    bench: Bench, job: str, result: JobResult, tags: dict[str, str] | None = None
) -> JobResult:
    """`dagster job execute` as an operator types it, sampled; the audit rows it wrote. A
    result may gather several runs of one job (processing, batch by batch): times add up,
    peaks are the highest."""
    command = [str(BIN / "dagster"), "job", "execute", "-m", "sync_platform.definitions", "-j", job]
    if tags:
        command += ["--tags", json.dumps(tags)]
    since = _last_audit_id(bench.engine)
    served_before, requests_before = bench.timing.snapshot()
    log_path = bench.logs / f"{result.pass_name}-{job}-{result.runs + 1}.log".replace(" ", "-")
    started, started_at = time.monotonic(), time.time()
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=bench.env, stdout=log, stderr=subprocess.STDOUT)
        with TreeSampler(process.pid) as sampler:
            returncode = process.wait()
    this = JobResult(result.pass_name, result.source, job, wall=time.monotonic() - started)
    ended_at = started_at + this.wall
    served_after, requests_after = bench.timing.snapshot()
    this.simulator_seconds = served_after - served_before
    this.simulator_requests = requests_after - requests_before
    single, this.peak_single_what = sampler.peak_single
    this.peak_single_mb = single / 2**20
    this.peak_sum_mb = sampler.peak_sum / 2**20
    this.peak_pss_mb = sampler.peak_pss / 2**20
    this.processes = len(sampler.peaks)
    with bench.engine.connect() as connection:
        rows = connection.execute(sa.select(sync_runs).where(sync_runs.c.id > since)).mappings()
        for row in rows:
            this.syncs += 1
            this.statuses[row["status"]] += 1
            if row["finished_at"] is not None:
                this.own += (row["finished_at"] - row["started_at"]).total_seconds()
            this.fetched += row["fetched"]
            this.inserted += row["inserted"]
            this.updated += row["updated"]
            this.deleted += row["soft_deleted"]
            this.quarantined += row["quarantined"]
            this.phases.update(row["phase_seconds"] or {})
    if not returncode:
        timeline = _timeline(bench.instance, job)
        this.before_run = timeline.run_start - started_at
        this.to_first_step = timeline.first_step - timeline.run_start
        this.in_steps = timeline.in_steps
        this.between_steps = timeline.run_end - timeline.first_step - timeline.in_steps
        this.after_run = ended_at - timeline.run_end
    bad = {s: n for s, n in this.statuses.items() if s not in ("succeeded", "warning")}
    print(
        f"  {job:<18} {this.wall:6.1f} s wall ({this.before_run:.1f} s before the run, "
        f"{this.to_first_step:.1f} s to the first step), syncs' own {this.own:6.1f} s, "
        f"simulator {this.simulator_seconds:5.1f} s ({this.simulator_requests} requests), "
        f"fetched {this.fetched:,}, +{this.inserted:,} ~{this.updated:,} -{this.deleted:,}, "
        f"peak {this.peak_single_mb:.0f} MB ({this.peak_single_what}), sums RSS "
        f"{this.peak_sum_mb:.0f} MB PSS {this.peak_pss_mb:.0f} MB",
        flush=True,
    )
    if returncode or bad or not this.syncs:
        tail = log_path.read_text()[-4000:]
        raise SystemExit(
            f"{job} failed (exit {returncode}, syncs {dict(this.statuses)}); log {log_path}:"
            f"\n{tail}"
        )
    result.add(this)
    return result


def send_webhooks(
    control: httpx.Client, receiver_url: str, total: int, seed: int
) -> tuple[dict[str, set[str]], float]:
    """Simulated n8n workflows deliver `total` webhooks to the receiver (1% of them twice,
    as networks repeat requests); the delivered ids per workflow, and the seconds it took."""
    weights = sum(WEBHOOK_SHARES.values())
    counts = {key: max(1, total * share // weights) for key, share in WEBHOOK_SHARES.items()}
    counts["new_lead"] += total - sum(counts.values())
    delivered: dict[str, set[str]] = {}
    started = time.monotonic()
    for workflow, count in counts.items():
        # n8n signs a delivery when its execution starts and the receiver takes a signature
        # for 5 minutes: executions are started (and sent) a few thousand at a time
        for part, first in enumerate(range(0, count, SEND_AT_ONCE)):
            chunk = min(SEND_AT_ONCE, count - first)
            report = control.post(
                "/_sim/n8n/send",
                json={"target": receiver_url, "workflow_key": workflow, "count": chunk,
                      "duplicate_rate": 0.01, "concurrency": 16, "seed": seed * 1000 + part},
                timeout=None,
            )  # fmt: skip
            report.raise_for_status()
            outcome = report.json()
            if outcome["failed"] or outcome["dropped"]:
                raise SystemExit(f"n8n {workflow}: {len(outcome['failed'])} deliveries failed")
            delivered.setdefault(workflow, set()).update(outcome["deliveries"]["delivered"])
    return delivered, time.monotonic() - started


# -- what the sources hold, and the warehouse --------------------------------------------------


def _active(connection: sa.Connection, table: str, where: str = "") -> int:
    query = f"SELECT count(*) FROM {table} WHERE _deleted_at IS NULL {where}"
    return connection.execute(sa.text(query)).scalar_one()


def _ga4_report_rows(control: httpx.Client, first: date, last: date) -> dict[str, int]:
    """Rows the simulator serves for each GA4 report over the window (peekReport: no pull
    counted, no quota spent)."""
    counts = {}
    for name, report in cached_source_config("ga4").entities.items():
        body = {
            "dateRanges": [{"startDate": first.isoformat(), "endDate": last.isoformat()}],
            "dimensions": [{"name": d} for d in report.options["dimensions"]],
            "metrics": [{"name": m} for m in report.options["metrics"]],
        }
        answer = control.post("/_sim/ga4/properties/123456789:peekReport", json=body, timeout=None)
        answer.raise_for_status()
        counts[report.table or name] = int(answer.json().get("rowCount", 0))
    return counts


def compare_counts(
    engine: sa.Engine,
    state: SimulatorState,
    control: httpx.Client,
    window: tuple[date, date],
    delivered: dict[str, set[str]],
) -> list[tuple[str, int, int]]:
    """(table, simulator, warehouse) for every synced table."""
    with state.erp.lock:
        erp = {name: len(state.erp.table(name)) for name in ("products", "variants", "customers")}
    sellers = sum(1 for row in state.sheets.rows[1:] if row and row[0])
    expected = {
        "dealer_stock": len(state.dealer.stock),
        "dealer_leads": len(state.dealer.leads),
        "legacy_products": erp["products"],
        "legacy_variants": erp["variants"],
        "legacy_customers": erp["customers"],
        "sheet_sellers": sellers,
        **_ga4_report_rows(control, *window),
        **{EVENT_TABLES[key]: len(ids) for key, ids in delivered.items()},
    }
    found = []
    first, last = window
    with engine.connect() as connection:
        for table, held in expected.items():
            if table.startswith("ga4_"):
                where = f"AND date BETWEEN '{first.isoformat()}' AND '{last.isoformat()}'"
                stored = _active(connection, table, where)
            else:
                stored = _active(connection, table)
            found.append((table, held, stored))
        inbox = connection.execute(sa.select(sa.func.count()).select_from(webhook_inbox))
        found.append(("webhook_inbox", sum(map(len, delivered.values())), inbox.scalar_one()))
    return found


def check_counts(found: list[tuple[str, int, int]], pass_name: str) -> None:
    wrong = [(t, held, stored) for t, held, stored in found if held != stored]
    print(f"  row counts after the {pass_name}: " + ("all match" if not wrong else "DIFFER"))
    if wrong:
        lines = "\n".join(f"    {t}: simulator {h:,}, warehouse {s:,}" for t, h, s in wrong)
        raise SystemExit(f"the warehouse does not hold what the simulator does:\n{lines}")


# -- the day later -----------------------------------------------------------------------------


def change_sources(control: httpx.Client, sizes: Sizes) -> dict[str, str]:
    """~1% of each source changed through the simulator's control API; what changed."""

    def pct(n: int, share: float) -> int:
        return max(1, round(n * share))

    done = {}
    stock = {"change": pct(sizes.stock, 0.005), "add": pct(sizes.stock, 0.0025),
             "remove": pct(sizes.stock, 0.0025)}  # fmt: skip
    control.post("/_sim/dealer/mutate", json=stock, timeout=None).raise_for_status()
    leads = {"change": pct(sizes.leads, 0.005), "add": pct(sizes.leads, 0.005)}
    control.post("/_sim/dealer/leads/mutate", json=leads, timeout=None).raise_for_status()
    done["dealer feed"] = (
        f"{stock['change']:,} vehicles repriced, {stock['add']:,} added, {stock['remove']:,} "
        f"sold; {leads['change']:,} leads moved on, {leads['add']:,} new"
    )
    erp = []
    for entity, n in (("products", sizes.products), ("variants", sizes.variants),
                      ("customers", sizes.customers)):  # fmt: skip
        body = {"entity": entity, "change": pct(n, 0.0075), "add": pct(n, 0.0025)}
        control.post("/_sim/erp/mutate", json=body, timeout=None).raise_for_status()
        erp.append(f"{entity} {body['change']:,} changed + {body['add']:,} added")
    done["legacy ERP"] = ", ".join(erp) + " (removals are the weekly full sync's)"
    rows = control.get("/_sim/sheets/rows").json()["rows"]
    sellers = [row for row in rows[1:] if row and row[0]]
    edited = sellers[:: max(1, round(1 / 0.008))][: pct(len(sellers), 0.008)]
    for row in edited:
        cells = row + [""] * (8 - len(row))
        cells[4] = "0400 000 111"  # a new phone number
        control.put(f"/_sim/sheets/sellers/{row[0]}", json=cells).raise_for_status()
    new = pct(len(sellers), 0.002)
    for n in range(new):
        number = f"AA{900_000 + n}"
        cells = [number, "Noah Patel", "05/12/2026", f"noah{n}@example.com", "0400 000 222",
                 "12 George St, Parramatta NSW 2150", "House", "$950,000"]  # fmt: skip
        control.put(f"/_sim/sheets/sellers/{number}", json=cells).raise_for_status()
    done["seller sheet"] = f"sellers edited: {len(edited)}, added: {new}"
    return done


# -- the bench ---------------------------------------------------------------------------------


def run_pass(
    bench: Bench,
    pass_name: str,
    webhooks: int,
    window: tuple[date, date],
    delivered: dict[str, set[str]],
) -> list[JobResult]:
    results = []
    for source, job in (("dealer feed", "dealer_sync"), ("legacy ERP", "legacy_erp_sync"),
                        ("seller sheet", "seller_sheet_sync")):  # fmt: skip
        results.append(run_job(bench, job, JobResult(pass_name, source, job)))
    first, last = window
    tags = {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }
    ga4 = JobResult(pass_name, "GA4", "ga4_daily", note=f"one run, partitions {first} … {last}")
    results.append(run_job(bench, "ga4_daily", ga4, tags))
    seed = len(results) + (0 if pass_name == "first load" else 1000)
    sent, seconds = send_webhooks(bench.control, bench.receiver_url, webhooks, seed)
    for key, ids in sent.items():
        delivered.setdefault(key, set()).update(ids)
    count = sum(map(len, sent.values()))
    print(f"  {count:,} webhooks delivered to the receiver in {seconds:.1f} s "
          f"({count / seconds:,.0f}/s)", flush=True)  # fmt: skip
    hooks = JobResult(pass_name, "webhooks", "process_webhooks")
    # A processing run takes at most a batch (5,000) of each workflow's pending deliveries;
    # webhook_inbox_sensor launches the next run for the rest. By hand: run it again until
    # nothing is pending, as the sensor would (without its 30 s between ticks).
    while pending := _pending(bench.engine):
        if hooks.runs > count // 1000 + 2:
            raise SystemExit(f"{pending} deliveries still pending after {hooks.runs} runs")
        run_job(bench, "process_webhooks", hooks)
    hooks.note = (
        f"{count:,} delivered in {seconds:.1f} s ({count / seconds:,.0f}/s) before the runs; "
        f"{hooks.runs} processing run{'s' if hooks.runs > 1 else ''} (a run takes 5,000 "
        "deliveries of each workflow)"
    )
    results.append(hooks)
    return results


def measure(scale: float, storage: str, keep: bool) -> dict:
    sizes = Sizes.at(scale)
    print(f"sizes at scale {scale}: {sizes}", flush=True)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    # The first load is the day before: GA4's "today" one day back, so the day later pulls a
    # new day (and two it pulled before) with partitions Dagster already has.
    first_window = (yesterday - timedelta(days=GA4_DAYS), yesterday - timedelta(days=1))
    later_window = (yesterday - timedelta(days=GA4_DAYS - 1), yesterday)
    load_before = os.getloadavg()
    with (
        work_directory(keep) as tmp,
        throwaway_database("sync_platform_daily", keep) as warehouse_url,
        (
            throwaway_database("sync_platform_daily_dagster", keep)
            if storage == "postgresql"
            else nullcontext(None)
        ) as dagster_url,
        simulator() as (server, state, timing),
        httpx.Client(base_url=server.url) as control,
    ):
        home, dagster_home, logs = (Path(tmp) / p for p in ("home", "dagster_home", "logs"))
        for folder in (home, dagster_home, logs):
            folder.mkdir()
        write_instance(dagster_home, dagster_url)
        engine = create_warehouse_engine(warehouse_url)
        upgrade_warehouse(engine, [e for s in all_source_configs() for e in s.entities.values()])
        generated = reset_simulator(control, sizes, first_window[1] + timedelta(days=1))
        print(f"simulator generated the sources in {generated:.1f} s", flush=True)
        env = demo_environment(warehouse_url, server.url, home) | {
            "DAGSTER_HOME": str(dagster_home),
            "SYNC_PLATFORM_HOME": str(home),
        }
        delivered: dict[str, set[str]] = {}
        passes = {}
        counts = {}
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        with _receiver(server.url, warehouse_url) as receiver:
            bench = Bench(env, logs, engine, timing, instance, control, receiver.url)
            print("\nfirst load", flush=True)
            passes["first load"] = run_pass(bench, "first load", sizes.webhooks, first_window,
                                            delivered)  # fmt: skip
            counts["first load"] = compare_counts(engine, state, control, first_window, delivered)
            check_counts(counts["first load"], "first load")
            changes = change_sources(control, sizes)
            today = (yesterday + timedelta(days=1)).isoformat()
            control.post("/_sim/ga4/today", json={"date": today}).raise_for_status()
            changes["GA4"] = "a day later: one new day, two days pulled again (revised figures)"
            changes["webhooks"] = f"{max(3, round(sizes.webhooks * CHANGED)):,} new deliveries"
            print("\na day later: " + "; ".join(f"{k}: {v}" for k, v in changes.items()))
            passes["day later"] = run_pass(bench, "day later",
                                           max(3, round(sizes.webhooks * CHANGED)), later_window,
                                           delivered)  # fmt: skip
            counts["day later"] = compare_counts(engine, state, control, later_window, delivered)
            check_counts(counts["day later"], "day later")
        simulator_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        instance.dispose()
        engine.dispose()
    return {
        "scale": scale,
        "sizes": sizes,
        "storage": storage,
        "passes": passes,
        "counts": counts,
        "changes": changes,
        "generated": generated,
        "simulator_rss": simulator_rss,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "windows": {"first load": first_window, "day later": later_window},
    }


# -- output --------------------------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _totals(results: list[JobResult]) -> dict[str, float]:
    return {name: sum(getattr(r, name) for r in results) for name in JobResult.SUMMED}


def table(run: dict) -> str:
    lines = [
        "| pass | source | job | wall s | syncs' own s | simulator serving s (requests) | "
        "rows fetched | written (+new ~changed -deleted) | peak RSS, largest process MB | "
        "peak sum of RSS MB | peak sum of PSS MB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for pass_name, results in run["passes"].items():
        for r in results:
            runs = f" ({r.runs} runs)" if r.runs > 1 else ""
            lines.append(
                f"| {pass_name} | {r.source} | `{r.job}`{runs} | {r.wall:.1f} | {r.own:.1f} | "
                f"{r.simulator_seconds:.1f} ({r.simulator_requests:,}) | {r.fetched:,} | "
                f"+{r.inserted:,} ~{r.updated:,} -{r.deleted:,} | {r.peak_single_mb:,.0f} "
                f"({r.peak_single_what}) | {r.peak_sum_mb:,.0f} | {r.peak_pss_mb:,.0f} |"
            )
        total = _totals(results)
        lines.append(
            f"| **{pass_name}** | **all** | | **{total['wall']:.1f}** | {total['own']:.1f} | "
            f"{total['simulator_seconds']:.1f} | {total['fetched']:,.0f} | | "
            f"**{max(r.peak_single_mb for r in results):,.0f}** | "
            f"{max(r.peak_sum_mb for r in results):,.0f} | "
            f"{max(r.peak_pss_mb for r in results):,.0f} |"
        )
    return "\n".join(lines)


PHASES = ("fetch", "map", "validate", "merge", "verify")


def time_table(run: dict) -> str:
    """Each job's wall time along its run (from Dagster's storage), and the syncs' phases."""
    lines = [
        "| pass | source | wall s | process start to run start s | run start to first step "
        "s | steps executing s | between steps s | run end to exit s | syncs' fetch s (of it "
        "the simulator serving) | map s | validate s | merge s | verify s |",
        "| --- | --- |" + " ---: |" * 11,
    ]
    for pass_name, results in run["passes"].items():
        for r in results:
            phases = " | ".join(f"{r.phases[name]:.1f}" for name in PHASES[1:])
            lines.append(
                f"| {pass_name} | {r.source} | {r.wall:.1f} | {r.before_run:.1f} | "
                f"{r.to_first_step:.1f} | {r.in_steps:.1f} | {r.between_steps:.1f} | "
                f"{r.after_run:.1f} | {r.phases['fetch']:.1f} ({r.simulator_seconds:.1f}) | "
                f"{phases} |"
            )
    return "\n".join(lines)


def findings(run: dict) -> list[str]:
    """Where the time went, in figures of this run."""
    found = []
    for pass_name, results in run["passes"].items():
        total = _totals(results)
        dagster = total["before_run"] + total["to_first_step"] + total["after_run"]
        gaps = total["between_steps"]
        found.append(
            f"{pass_name}: {total['wall']:.0f} s of wall in {sum(r.runs for r in results)} "
            f"runs, of which {dagster:.0f} s ({dagster / total['wall']:.0%}) before a run's "
            f"first step or after its end (the CLI, loading the code location, creating the "
            f"run, starting the executor and the first step process; exiting) and "
            f"{gaps:.0f} s between steps (launching the next step's process, asset checks' "
            f"steps waiting on their asset); steps were executing for {total['in_steps']:.0f} "
            f"s, the simulator serving for {total['simulator_seconds']:.0f} s of it"
        )
    first = run["passes"]["first load"]
    biggest = max(first, key=lambda r: r.own)
    shares = ", ".join(
        f"{name} {biggest.phases[name]:.0f} s" for name in PHASES if biggest.phases[name]
    )
    found.append(
        f"The largest first load, {biggest.source} ({biggest.fetched:,} rows): its syncs' "
        f"phases add up to {shares} (entities that run side by side each count), the "
        f"simulator serving {biggest.simulator_seconds:.0f} s of the fetch"
    )
    hooks = next(r for r in first if r.source == "webhooks")
    found.append(
        f"Webhooks: {hooks.runs} processing run{'s' if hooks.runs > 1 else ''} for "
        f"{hooks.fetched:,} deliveries took "
        f"{hooks.wall:.0f} s of wall for {hooks.own:.0f} s of syncs: a run takes at most "
        "5,000 deliveries of each workflow (WebhookInboxResource.batch_size), so the backlog "
        "costs one run's start-up per 5,000 of the busiest workflow"
    )
    return found


def verdicts(run: dict) -> list[str]:
    later = run["passes"]["day later"]
    wall = sum(r.wall for r in later)
    peak = max(r.peak_single_mb for p in run["passes"].values() for r in p)
    scale = run["scale"]
    at = "" if scale == 1 else f" (at scale {scale:g}, not the full day)"
    return [
        f"the day-later re-sync of everything, wall total ≤ {RESYNC_TARGET_SECONDS:.0f} s: "
        f"{wall:.1f} s, {_met(wall <= RESYNC_TARGET_SECONDS)}{at}",
        f"peak RSS of any process of any run ≤ {PEAK_TARGET_MB / 1024:.1f} GB: {peak:,.0f} MB, "
        f"{_met(peak <= PEAK_TARGET_MB)}{at}",
    ]


def count_table(run: dict) -> str:
    lines = ["| table | simulator (first load) | warehouse | simulator (day later) | warehouse |",
             "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    later = {t: (h, s) for t, h, s in run["counts"]["day later"]}
    for table_name, held, stored in run["counts"]["first load"]:
        h2, s2 = later[table_name]
        lines.append(f"| {table_name} | {held:,} | {stored:,} | {h2:,} | {s2:,} |")
    return "\n".join(lines)


def machine() -> str:
    pg_version = server_version()
    import dagster
    import polars

    return (
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"Dagster {dagster.__version__}, polars {polars.__version__}, PostgreSQL {pg_version}"
    )


def report(run: dict) -> str:
    s = run["sizes"]
    before = ", ".join(f"{x:.1f}" for x in run["load_before"])
    after = ", ".join(f"{x:.1f}" for x in run["load_after"])
    changes = "\n".join(f"- {source}: {what}" for source, what in run["changes"].items())
    first, later = run["windows"]["first load"], run["windows"]["day later"]
    notes = "\n".join(
        f"- {pass_name}, {r.source}: {r.note}"
        for pass_name, results in run["passes"].items()
        for r in results
        if r.note
    )
    verdict = "\n".join(f"- {line}" for line in verdicts(run))
    return f"""Machine: {machine()}. Load average (1, 5, 15 min) before the run: {before}; \
after: {after}.

Scale {run["scale"]:g}: dealer feed {s.stock:,} vehicles + {s.leads:,} leads; legacy ERP \
{s.products:,} products + {s.variants:,} variants + {s.customers:,} customers; seller sheet \
{s.sellers:,} rows; GA4 four reports over {GA4_DAYS} days ({first[0]} … {first[1]}, a day \
later {later[0]} … {later[1]}) with {s.landing_pages:,} landing pages a day; \
{s.webhooks:,} webhook deliveries through the receiver. Warehouse: PostgreSQL; Dagster \
storage: {run["storage"]}.

{table(run)}

{verdict}

Where each job's wall time went (the run's own timestamps from Dagster's storage; the syncs'
phases from the audit, summed over a job's entities, which may run side by side):

{time_table(run)}

{chr(10).join("- " + line for line in findings(run))}

{notes}
- The simulator generated the day's sources in {run["generated"]:.0f} s (in no figure). The \
bench's own process (simulator, receiver, sampler) peaked at {run["simulator_rss"]:,.0f} MB RSS.

The day later changed, through the simulator's control API:
{changes}

Rows after each pass, simulator against warehouse (active rows; GA4 within the pass's window):

{count_table(run)}"""


def write_docs(run: dict) -> None:
    section = f"""{START}
## A day at full size, through Dagster (`make bench-daily`, {date.today().isoformat()})

{report(run)}

How to read it: each job row is one `dagster job execute -m sync_platform.definitions -j
<job>` in a fresh process, as an operator types it (`ga4_daily` with the partition-range
tags the nightly schedule sets), against the simulator on loopback, a throwaway PostgreSQL
warehouse and a throwaway DAGSTER_HOME (the repository's dagster.yaml, Dagster's storage in
its own PostgreSQL database). *wall* is the process's start to its exit. *syncs' own* adds up
the audit's `started_at` → `finished_at` of every entity the run synced (entities that run
side by side each count, so it can exceed the wall). *simulator serving* is the time the
simulator's ASGI app spent answering the run's requests (it runs on a thread of the bench's
process, on the same two cores): the part of the wall that is the stand-in source's, not the
platform's. Memory: the `dagster job execute` process and every process under it (the step
forkserver, each step) sampled every 0.2 s; *largest process* is the highest RSS any one of
them reached, the sums are of one sample (RSS counts the pages forked steps share with the
forkserver once per process; PSS shares them out). The targets: the day-later pass, every
source's job, in ≤ 120 s of wall in all; no process above 1.5 GB. Nothing fails on a missed
target; the bench fails if a sync fails or if, after either pass, the warehouse's active rows
differ from what the simulator holds.

The day: dealer stock is a full snapshot (soft deletes), leads and the ERP's three entities
incremental (the ERP's hourly delta by `modified_since`: its removals are left to the weekly
`legacy_erp_full_sync`, so the day later changes and adds ERP records but removes none); the
seller sheet is read whole; GA4's run is the nightly one over a 3-day window, a day later one
day on (the simulator's "today" moved), so one day is new and two are pulled again with
revised figures. The GA4 simulator's rows per day follow its settings: `landing_pages` (the
landingPage vocabulary) and each property's `sessions_per_day` (45 per landing page here, so
the least popular page has a session every day); the traffic, events and totals reports have
fixed vocabularies (at most 180, 10 and 1 rows a day). Webhooks are sent by the simulated n8n
(signed Standard Webhooks deliveries, 1% of them twice) to the receiver started as the demo
starts it (a thread of the bench's process), 16 at a time; the delivery rate is the
simulated n8n's (an httpx client in Python), well below what the receiver takes (see *Webhook
receiver throughput*). `process_webhooks` is then run by hand until no delivery is pending,
as `webhook_inbox_sensor` would launch it.
{END}"""
    write_section(section, START, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every size")
    parser.add_argument("--dagster-storage", choices=("postgresql", "sqlite"),
                        default="postgresql")  # fmt: skip
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases, the logs and DAGSTER_HOME"
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    run = measure(args.scale, args.dagster_storage, args.keep)
    print()
    print(report(run))
    if args.write_docs:
        write_docs(run)
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
