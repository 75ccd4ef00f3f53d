"""Durable webhook deliveries per second the receiver sustains on loopback, PostgreSQL and SQLite.

For each dialect and worker count: `sync-platform receiver` runs in its own process(es) on a
free port against a fresh migrated warehouse; this process is the load generator: N keep-alive
connections (asyncio, uvloop when installed) each sending pre-signed Standard Webhooks
deliveries back to back (one in flight per connection, like n8n's HTTP Request node), timing
each from the first byte sent to the last byte of the answer. A delivery counts when it was
answered 202 *and* its row is in `webhook_inbox` afterwards (checked by counting rows), so
the rate is of committed deliveries, not of answers.

    python -m bench.receiver_bench [--dialects postgresql,sqlite] [--workers 1,2]
                                   [--deliveries 20000] [--concurrency 64] [--repeats 3]
                                   [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.databases import server_version, throwaway_database
from bench.performance_doc import DOCS, write_section
from sync_platform.config import all_source_configs
from sync_platform.receiver.signing import generate_secret, signed_headers
from sync_platform.settings import WAREHOUSE_URL_ENV
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.platform_tables import webhook_inbox
from sync_platform.warehouse.schema import upgrade_warehouse
from sync_platform_simulator.background_server import free_port

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- receiver-bench:start -->", "<!-- receiver-bench:end -->"
TARGET = {"postgresql": 2000}  # durable deliveries/s on 2 cores
WARMUP = 500
WORKFLOW = "form_submission"
SECRET_ENV = "N8N_WEBHOOK_SECRET_FORM_SUBMISSION"


# -- warehouses and the receiver process -------------------------------------------------------


def _entities() -> list:
    return [entity for source in all_source_configs() for entity in source.entities.values()]


@contextmanager
def warehouse(dialect: str) -> Iterator[str]:
    """A fresh migrated warehouse, dropped afterwards."""
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory(prefix="receiver_bench_") as folder:
            url = f"sqlite:///{folder}/warehouse.db"
            engine = create_warehouse_engine(url)
            upgrade_warehouse(engine, _entities())
            engine.dispose()
            yield url
        return
    with throwaway_database("sync_platform_bench") as url:
        engine = create_warehouse_engine(url)
        upgrade_warehouse(engine, _entities())
        engine.dispose()
        yield url


@contextmanager
def receiver(url: str, workers: int, secret: str) -> Iterator[int]:
    """`sync-platform receiver` on a free port (its port), stopped with SIGTERM afterwards."""
    port = free_port()
    command = Path(sys.executable).parent / "sync-platform"
    env = {**os.environ, WAREHOUSE_URL_ENV: url, SECRET_ENV: secret}
    arguments = ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    process = subprocess.Popen(
        [str(command), "receiver", *arguments],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=60)


# -- the load generator -------------------------------------------------------------------------


def build_requests(port: int, secret: str, count: int, prefix: str) -> list[bytes]:
    """Whole HTTP/1.1 requests, signed now (well inside the 5-minute tolerance)."""
    now = int(time.time())
    requests = []
    for i in range(count):
        event = {
            "event": "form_submission",
            "eventId": f"evt_{prefix}_{i}",
            "submissionId": f"FS-{i:07d}",
            "formId": "contact",
            "fields": {
                "name": "Ava Nguyen",
                "email": f"ava{i}@example.com",
                "phone": "0412345678",
                "message": "Is the Corolla still available?",
            },
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        delivery_id = f"n8n-bench-{prefix}-{i}"
        headers = signed_headers(secret, delivery_id, now, body) | {
            "Host": f"127.0.0.1:{port}",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "X-N8N-Execution-Id": str(i + 1),
        }
        head = f"POST /webhooks/n8n/{WORKFLOW} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        requests.append(head.encode() + b"\r\n" + body)
    return requests


async def _connection(
    port: int, requests: list[bytes], latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def generate_load(port: int, requests: list[bytes], concurrency: int) -> dict:
    """Send every request over `concurrency` connections; seconds, latencies, statuses."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    shares = [requests[k::concurrency] for k in range(concurrency)]

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(_connection(port, s, latencies, statuses) for s in shares))
        return time.perf_counter() - started

    try:
        import uvloop

        seconds = uvloop.run(run())
    except ImportError:
        seconds = asyncio.run(run())
    return {"seconds": seconds, "latencies": sorted(latencies), "statuses": statuses}


def inbox_count(url: str, prefix: str) -> int:
    engine = create_warehouse_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.count())
                .select_from(webhook_inbox)
                .where(webhook_inbox.c.delivery_id.like(f"n8n-bench-{prefix}-%"))
            ).scalar_one()
    finally:
        engine.dispose()


def load_average() -> float:
    return os.getloadavg()[0]


def run_scenario(dialect: str, workers: int, deliveries: int, concurrency: int) -> dict:
    secret = generate_secret()
    with warehouse(dialect) as url, receiver(url, workers, secret) as port:
        warm = build_requests(port, secret, WARMUP, "warmup")
        generate_load(port, warm, concurrency)
        load = load_average()
        prefix = uuid.uuid4().hex[:8]
        requests = build_requests(port, secret, deliveries, prefix)
        result = generate_load(port, requests, concurrency)
        stored = inbox_count(url, prefix)
    latencies = result["latencies"]
    accepted = result["statuses"].get(202, 0)
    return {
        "dialect": dialect,
        "workers": workers,
        "deliveries": deliveries,
        "concurrency": concurrency,
        "seconds": result["seconds"],
        "durable": min(stored, accepted),
        "statuses": result["statuses"],
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "load_before": load,
    }


# -- output ---------------------------------------------------------------------------------------


def machine() -> str:
    pg_version = server_version()
    import fastapi
    import uvicorn

    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, uvicorn {uvicorn.__version__} "
        f"(httptools, uvloop), FastAPI {fastapi.__version__}, SQLAlchemy {sa.__version__}; "
        f"PostgreSQL {pg_version}, SQLite {sqlite3.sqlite_version}"
    )


def _verdict(r: dict) -> str:
    target = TARGET.get(r["dialect"])
    if target is None:
        return ""
    return f"≥ {target:,}/s " + ("met" if r["rate"] >= target else "MISSED")


def table(results: list[dict]) -> str:
    lines = [
        "| dialect | workers | deliveries | connections | seconds | durable/s | p50 ms | "
        "p99 ms | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['dialect']} | {r['workers']} | {r['deliveries']:,} | {r['concurrency']} | "
            f"{r['seconds']:.2f} | {r['rate']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{_verdict(r)} |"
        )
    return "\n".join(lines)


def write_docs(results: list[dict], repeats: int, host: str) -> None:
    loads = ", ".join(f"{r['load_before']:.1f}" for r in results)
    section = f"""{START}
## Webhook receiver throughput (`python -m bench.receiver_bench`, {date.today().isoformat()})

Machine: {host}. 1-minute load average before each row's median run: {loads}.

{table(results)}

How to read it: *durable/s* is deliveries answered 202 whose row is in `webhook_inbox`
afterwards, divided by the wall-clock seconds from the first request sent to the last answer
read. Each delivery is a signed Standard Webhooks POST of a ~250-byte form submission,
checked (headers, HMAC-SHA256, timestamp, UTF-8, JSON object) and committed
(`synchronous_commit = on` on PostgreSQL, `synchronous = FULL` in WAL mode on SQLite) before
its answer. The load generator runs on the same 2 cores as the receiver and the database, on
*connections* keep-alive connections with one request in flight each; *p50*/*p99* are
per-request latencies as it saw them. Median of {repeats} runs, each against a fresh
warehouse after {WARMUP} warm-up deliveries. The target is PostgreSQL's (≥ 2,000/s on 2
cores); SQLite, the embedded default, has none.

Where the speed comes from: group commit (`receiver/inbox_writer.py`, over
`inbox/store.py`): deliveries that arrive while a transaction is in flight go into the next
one — one multi-row `INSERT … ON CONFLICT (delivery_id) DO NOTHING RETURNING` and one fsync
for all of them, each request answered only
after its own row is committed — with at most two transactions in flight per worker on
PostgreSQL (one on SQLite, whose writes queue on an in-process lock instead of the busy
timeout). One request per transaction, the first version, managed about 750/s here: a commit
(fsync) per delivery, and connections opened and closed as 40 threads overflowed a pool of 5.
Two uvicorn workers add a second core's worth of request parsing and HMAC checks.
{END}"""
    write_section(section, START, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialects", default="postgresql,sqlite")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts to measure")
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    results = []
    for dialect in args.dialects.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            runs = []
            for _ in range(args.repeats):
                run = run_scenario(dialect, workers, args.deliveries, args.concurrency)
                run["rate"] = run["durable"] / run["seconds"]
                runs.append(run)
                print(
                    f"{dialect} workers={workers}: {run['rate']:,.0f}/s durable, "
                    f"p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, "
                    f"answers {run['statuses']}, load before {run['load_before']:.1f}",
                    flush=True,
                )
            median_rate = statistics.median(r["rate"] for r in runs)
            results.append(min(runs, key=lambda r: abs(r["rate"] - median_rate)))
    host = machine()
    print(f"\nMachine: {host}\n")
    print(table(results))
    if args.write_docs:
        write_docs(results, args.repeats, host)
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
