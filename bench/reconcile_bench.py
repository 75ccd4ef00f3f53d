"""Reconciliation of a million vehicles: `reconcile.compare.compare_entity`, timed and sized.

A throwaway warehouse gets N `dealer_stock` rows through the platform's own merge (the merge
bench's generator and its "initial" scenario, in a child process). The source is a lazy
generator of pages of 5,000 records in the dealer API's field names (StockNumber, VIN, …),
equal to the warehouse except for a planted drift: `--drift` of N records split evenly among
a changed price, a changed colour, a record the source deleted (extra in the warehouse) and
one it added (missing from the warehouse). The pages are built in memory, not served over
HTTP: the figure is the comparison's, not the dealer API's. Each compare runs in a fresh
process, so its peak RSS is its own, and the bench fails unless exactly the planted
discrepancies are found.

    python -m bench.reconcile_bench [--rows 1000000] [--drift 0.01]
                                    [--dialect postgresql,sqlite] [--write-docs]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl

from bench.merge_bench import (
    ENTITY,
    checkpoint,
    fresh_warehouse,
    machine,
    run_in_child,
    stock_rows,
)
from bench.performance_doc import DOCS, write_section
from sync_platform.reconcile.compare import compare_entity
from sync_platform.warehouse.connection import create_warehouse_engine

START, END = "<!-- reconcile-bench:start -->", "<!-- reconcile-bench:end -->"
PAGE = 5_000
CLASSES = ["price", "colour", "extra", "missing"]  # in that order: ids i*stride + 0, 1, 2
API_NAMES = {column: spec.source for column, spec in ENTITY.fields.items()}


class Drift:
    """Which ids carry which planted difference: `each` per class, spread evenly over the
    loaded ids (price, colour, deleted from the source), the added ones after them."""

    def __init__(self, rows: int, share: float) -> None:
        self.rows = rows
        self.each = round(rows * share / len(CLASSES))
        self.stride = rows // self.each if self.each else rows + 1
        if self.each and self.stride < 3:
            raise SystemExit(f"--drift {share} is too large for {rows:,} rows")

    def planted(self, kind: str) -> pl.Expr:
        """The ids of the loaded rows that carry `kind` (price, colour or extra)."""
        slot = CLASSES.index(kind)
        return (pl.col("id") % self.stride == slot) & (pl.col("id") // self.stride < self.each)

    def expected(self) -> set[tuple[str, str, tuple[str, ...]]]:
        """(record key, kind, fields) of every discrepancy the comparison must report."""
        spread = [i * self.stride for i in range(self.each)]
        key = "STK{:08d}".format
        return (
            {(key(i), "field_diff", ("price",)) for i in spread}
            | {(key(i + 1), "field_diff", ("colour",)) for i in spread}
            | {(key(i + 2), "extra", ()) for i in spread}
            | {(key(self.rows + i), "missing", ()) for i in range(self.each)}
        )


def _api_records(rows: pl.DataFrame) -> list[dict]:
    """Typed rows as the dealer API serves them: its field names, JSON types, its spelling."""
    return rows.select(
        *(pl.col(c).alias(API_NAMES[c]) for c in ("stock_number", "vin", "make", "model")),
        pl.col("variant").alias(API_NAMES["variant"]),
        *(pl.col(c).alias(API_NAMES[c]) for c in ("year", "odometer")),
        pl.col("price").cast(pl.Float64).alias(API_NAMES["price"]),
        pl.col("status").str.to_titlecase().alias(API_NAMES["status"]),
        *(
            pl.col(c).alias(API_NAMES[c])
            for c in ("colour", "body", "fuel", "transmission", "location")
        ),
        pl.col("updated_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias(API_NAMES["updated_at"]),
    ).to_dicts()


def source_pages(drift: Drift, clock: dict[str, float]) -> Iterator[list[dict]]:
    """The source's read, one page of PAGE records at a time, built only when asked for.
    `clock` gets when the comparison first asked (its warehouse read is done by then), when
    it took the last page, and the seconds spent building pages (not the comparison's)."""
    clock["source_started"] = time.perf_counter()
    clock["generating"] = 0.0
    pending: list[dict] = []
    for start in range(0, drift.rows + drift.each, PAGE):
        began = time.perf_counter()
        rows = stock_rows(start, min(start + PAGE, drift.rows + drift.each)).with_columns(
            pl.when(drift.planted("price"))
            .then(pl.col("price") + 1)
            .otherwise(pl.col("price"))
            .alias("price"),
            pl.when(drift.planted("colour"))
            .then(pl.lit("Puce"))
            .otherwise(pl.col("colour"))
            .alias("colour"),
        )
        pending += _api_records(rows.filter(~drift.planted("extra")))
        clock["generating"] += time.perf_counter() - began
        while len(pending) >= PAGE:
            page, pending = pending[:PAGE], pending[PAGE:]
            yield page
    if pending:
        yield pending
    clock["source_done"] = time.perf_counter()


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset VmHWM (Linux: 5 into clear_refs), so the peak that follows is the compare's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def compare_once(url: str, rows: int, share: float, workdir: Path, profile: bool) -> dict:
    """One timed compare in this process; fails unless it found exactly the planted drift."""
    load_average = os.getloadavg()[0]
    drift = Drift(rows, share)
    engine = create_warehouse_engine(url)
    clock: dict[str, float] = {}
    rss_before = _status_kb("VmRSS")
    reset = _reset_peak()
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    comparison = compare_entity(engine, "dealer_feed", ENTITY, source_pages(drift, clock), workdir)
    if profiler:
        profiler.disable()
    finished = time.perf_counter()
    peak_hwm = _status_kb("VmHWM") if reset else None
    engine.dispose()
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)

    found = {(d.record_key, d.kind, tuple(d.fields)) for d in comparison.discrepancies}
    expected = drift.expected()
    by_class = Counter(_class(kind, fields) for _, kind, fields in found)
    wrong = (
        found != expected
        or comparison.source_rows != rows
        or comparison.warehouse_rows != rows
        or comparison.unreadable
        or comparison.pending
    )
    if wrong:
        raise SystemExit(
            f"compare_entity found the wrong drift: {dict(by_class)} (planted {drift.each} "
            f"of each of {CLASSES}); {len(found - expected)} unexpected, "
            f"{len(expected - found)} not found; source_rows {comparison.source_rows}, "
            f"warehouse_rows {comparison.warehouse_rows}, unreadable "
            f"{len(comparison.unreadable)}, pending {comparison.pending}"
        )
    repriced = [d for d in comparison.discrepancies if d.fields == ["price"]]
    if any(
        float(d.source_values["price"]) != float(d.warehouse_values["price"]) + 1 for d in repriced
    ):
        raise SystemExit("a price discrepancy does not show the planted +1 change")

    generating = clock.get("generating", 0.0)
    return {
        "rows": rows,
        "drift": share,
        "seconds": finished - started - generating,
        "with_generation": finished - started,
        "warehouse_s": clock["source_started"] - started,
        "source_s": clock["source_done"] - clock["source_started"] - generating,
        "diff_s": finished - clock["source_done"],
        "generating_s": generating,
        "rss_before_mb": rss_before / 1024,
        "peak_mb": (peak_hwm or 0) / 1024 if reset else None,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "spill_mb": sum(f.stat().st_size for f in workdir.glob("*.parquet")) / 2**20,
        "found": dict(by_class),
        "planted": drift.each,
        "load_average": load_average,
    }


def _class(kind: str, fields: tuple[str, ...]) -> str:
    return fields[0] if kind == "field_diff" and len(fields) == 1 else kind


def _vacuum(url: str) -> None:
    """A warehouse as autovacuum leaves it: hint bits set, statistics fresh, no dirty WAL
    (otherwise the first read pays for the load's clean-up)."""
    if url.startswith("postgresql"):
        engine = create_warehouse_engine(url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f"VACUUM (ANALYZE) {ENTITY.table}")
        engine.dispose()
    checkpoint(url)


def _compare_in_child(url: str, rows: int, share: float, workdir: Path, profile: bool) -> dict:
    command = [sys.executable, "-m", "bench.reconcile_bench", "--child", url, str(workdir)]
    command += ["--rows", str(rows), "--drift", str(share)] + (["--profile"] if profile else [])
    output = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(
    dialect: str, rows: int, share: float, workdir: Path, repeats: int, profile: bool
) -> dict:
    """Load once, compare `repeats` times (each in a fresh process): the median time, the
    highest peak."""
    with fresh_warehouse(dialect, workdir) as url:
        load = run_in_child(url, rows, "initial")
        _vacuum(url)
        runs = []
        for attempt in range(repeats):
            spill = workdir / f"spill-{dialect}-{attempt}"
            runs.append(_compare_in_child(url, rows, share, spill, profile))
            for file in spill.glob("*.parquet"):
                file.unlink()
    median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    peaks = [r["peak_mb"] for r in runs if r["peak_mb"] is not None]
    return median | {
        "dialect": dialect,
        "peak_mb": max(peaks) if peaks else None,
        "ru_maxrss_mb": max(r["ru_maxrss_mb"] for r in runs),
        "load_peak_mb": load["peak_mb"],
        "load_s": load["seconds"],
        "repeats": repeats,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| dialect | rows | drift | seconds | rows/s | warehouse s | source s | diff s "
        "| peak RSS MB | RSS before MB | spill MB | found / planted |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        peak = r["peak_mb"] if r["peak_mb"] is not None else r["ru_maxrss_mb"]
        found = ", ".join(f"{c} {r['found'].get(c, 0):,}/{r['planted']:,}" for c in CLASSES)
        lines.append(
            f"| {r['dialect']} | {r['rows']:,} | {r['drift']:.1%} | {r['seconds']:.2f} | "
            f"{r['rows'] / r['seconds']:,.0f} | {r['warehouse_s']:.2f} | {r['source_s']:.2f} | "
            f"{r['diff_s']:.2f} | {peak:.0f} | {r['rss_before_mb']:.0f} | "
            f"{r['spill_mb']:.1f} | {found} |"
        )
    return "\n".join(lines)


def notes(results: list[dict]) -> str:
    return "\n".join(
        f"- {r['dialect']}: the load (merge, in its own process) peaked at "
        f"{r['load_peak_mb']:.0f} MB in {r['load_s']:.1f} s; the compare process's ru_maxrss "
        f"was {r['ru_maxrss_mb']:.0f} MB; building the source pages took a further "
        f"{r['generating_s']:.2f} s, left out of *seconds*; the 1-minute load average "
        f"before it was {r['load_average']:.1f}."
        for r in results
    )


def write_docs(results: list[dict]) -> None:
    rows = results[0]["rows"]
    section = f"""{START}
## Reconciliation (1M vehicles)

`make bench-reconcile`, {date.today().isoformat()}. Machine: {machine()}.

{table(results)}

{notes(results)}

How to read it: *seconds* is the wall-clock time of one
`reconcile.compare.compare_entity` call for `dealer_stock` against a warehouse of
{rows:,} rows loaded by the platform's merge, the source serving the same vehicles with the
planted *drift* (split evenly among a changed price, a changed colour, a vehicle gone from
the source and one new to it); the time the bench spends building the source's pages is
left out. The pages (5,000 records in the dealer API's field names and JSON types) are made
in memory as the comparison asks for them, not served over HTTP: this measures the
comparison, not the dealer API. *warehouse s* reads the active rows in key order (COPY on
PostgreSQL, the raw cursor on SQLite, 100k rows a batch), types and hashes them and spills
them to Parquet; *source s* maps, validates, hashes and spills the source's pages
(`loadable_page`, as a sync does); *diff s* joins the two (key, hash) sets, reads the
differing rows back from the spill and builds the discrepancies. *peak RSS MB* is the
compare process's high-water mark (VmHWM, reset just before the call; *RSS before* is its
resident size then, the imports); *spill MB* is the Parquet written to the work directory.
Each compare runs {results[0]["repeats"]} times in a fresh process (median time, highest
peak) after `VACUUM (ANALYZE)` and a `CHECKPOINT`; the bench fails unless every run reports
exactly the planted discrepancies, no more and no fewer.
{END}"""
    write_section(section, START, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--drift", type=float, default=0.01, help="share of records drifted")
    parser.add_argument("--dialect", default="postgresql,sqlite", help="one or both: a,b")
    parser.add_argument("--repeats", type=int, default=3, help="compares per dialect (median)")
    parser.add_argument("--profile", action="store_true", help="cProfile each compare (stderr)")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("URL", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, workdir = args.child
        print(json.dumps(compare_once(url, args.rows, args.drift, Path(workdir), args.profile)))
        return
    print(
        "Source pages are generated in memory (no HTTP): the figures are the comparison's.",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for dialect in args.dialect.split(","):
            results.append(
                measure(dialect, args.rows, args.drift, Path(workdir), args.repeats, args.profile)
            )
            print(table(results), "\n", flush=True)
    print(notes(results))
    print(machine())
    if args.write_docs:
        write_docs(results)
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
