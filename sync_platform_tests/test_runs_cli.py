"""`sync-platform runs` against a real warehouse (SQLite and PostgreSQL) with a planted audit:
each filter picks exactly the planted runs, `--key` finds the runs that touched a record in
every table that records keys per run, CSV and JSON carry timezone-aware timestamps, and a
filter naming something unknown is an error listing what is known (exit 2, no traceback)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sync_platform.cli import app
from sync_platform.warehouse.platform_tables import (
    sync_conflicts,
    sync_errors,
    sync_gaps,
    sync_quarantine,
    sync_record_log,
    sync_runs,
)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


# name: (source, entity, status, started)
RUNS = {
    "a": ("dealer_feed", "dealer_stock", "succeeded", at(1, 10)),
    "b": ("dealer_feed", "dealer_stock", "failed", at(2, 10)),
    "c": ("dealer_feed", "dealer_leads", "warning", at(3, 23, 30)),
    "d": ("legacy_erp", "legacy_products", "running", at(4, 8)),
    "e": ("dealer_feed", "dealer_stock", "succeeded", at(5, 9)),
    "f": ("retired_feed", "retired_things", "succeeded", at(6, 9)),  # no longer configured
}


@pytest.fixture
def planted(warehouse_url, monkeypatch) -> dict[str, int]:
    """The runs of RUNS and what they did to record keys; name → sync_runs.id."""
    monkeypatch.setenv("SYNC_PLATFORM_WAREHOUSE_URL", warehouse_url)
    engine = sa.create_engine(warehouse_url.replace("postgresql://", "postgresql+psycopg://"))
    ids = {}
    with engine.begin() as connection:
        for name, (source, entity, status, started) in RUNS.items():
            finished = None if status == "running" else started + timedelta(seconds=90)
            ids[name] = connection.execute(
                sa.insert(sync_runs)
                .values(
                    source=source,
                    entity=entity,
                    trigger="scheduled",
                    kind="snapshot",
                    status=status,
                    started_at=started,
                    finished_at=finished,
                    fetched=200,
                    inserted=3,
                    updated=1,
                    error_counts={"network": 1} if status == "failed" else None,
                    message=f"run {name}",
                )
                .returning(sync_runs.c.id)
            ).scalar_one()
        log = {"entity": "dealer_stock", "result": "success", "logged_at": at(1, 10)}
        connection.execute(
            sa.insert(sync_record_log),
            [
                {**log, "sync_run_id": ids["a"], "record_key": "STK1", "operation": "update"},
                {**log, "sync_run_id": ids["a"], "record_key": "STK2", "operation": "insert"},
                {**log, "sync_run_id": ids["e"], "record_key": "STK2", "operation": "soft_delete"},
            ],
        )
        connection.execute(
            sa.insert(sync_quarantine).values(
                sync_run_id=ids["c"], source="dealer_feed", entity="dealer_leads",
                record_key="LEAD7", raw_record="{}", reason="bad e-mail",
                quarantined_at=at(3, 23, 31),
            )
        )  # fmt: skip
        connection.execute(
            sa.insert(sync_conflicts).values(
                sync_run_id=ids["e"], source="dealer_feed", entity="dealer_stock",
                record_key="STK1", kind="stale_source", resolution="kept_warehouse",
                detected_at=at(5, 9),
            )
        )  # fmt: skip
        connection.execute(
            sa.insert(sync_gaps).values(
                source="dealer_feed", entity="dealer_stock", record_key="STK3",
                status="resolved", detected_at=at(1, 10), detected_by_run_id=ids["a"],
                resolved_at=at(5, 9), resolved_by_run_id=ids["e"],
            )
        )  # fmt: skip
        connection.execute(
            sa.insert(sync_errors).values(
                sync_run_id=ids["b"], source="dealer_feed", entity="dealer_stock",
                category="network", message="timed out", record_key="STK9",
                occurred_at=at(2, 10),
            )
        )  # fmt: skip
    engine.dispose()
    return ids


def runs(*args: str):
    return CliRunner().invoke(app, ["runs", *args])


def listed(planted: dict[str, int], *args: str) -> list[str]:
    """The names of the runs `runs --format json ARGS` lists, in its order."""
    result = runs("--format", "json", "--limit", "0", *args)
    assert result.exit_code == 0, result.output
    by_id = {run_id: name for name, run_id in planted.items()}
    return [by_id[row["id"]] for row in json.loads(result.stdout)]


def test_filters_pick_exactly_the_matching_runs_newest_first(planted):
    assert listed(planted) == ["f", "e", "d", "c", "b", "a"]
    assert listed(planted, "--source", "dealer_feed") == ["e", "c", "b", "a"]
    assert listed(planted, "--entity", "dealer_stock") == ["e", "b", "a"]
    assert listed(planted, "--entity", "dealer_stock", "--entity", "legacy_products") == [
        "e",
        "d",
        "b",
        "a",
    ]
    assert listed(planted, "--status", "failed") == ["b"]
    assert listed(planted, "--status", "running", "--status", "warning") == ["d", "c"]
    assert listed(planted, "--source", "retired_feed") == ["f"]  # history outlives config
    # --until with a date alone takes in that whole day; --since is inclusive
    assert listed(planted, "--since", "2025-03-02", "--until", "2025-03-03") == ["c", "b"]
    assert listed(planted, "--since", "2025-03-02T10:00:00") == ["f", "e", "d", "c", "b"]
    assert listed(planted, "--until", "2025-03-02T10:00") == ["a"]  # a datetime: exclusive
    # an offset is honoured: 2025-03-04T00:00+02:00 is 03-03 22:00 UTC
    assert listed(planted, "--since", "2025-03-03T23:00+02:00", "--until", "2025-03-04") == [
        "d",
        "c",
    ]


def test_key_finds_every_run_that_touched_the_record_and_says_how(planted):
    def touched(key: str, *more: str) -> dict[str, list[str]]:
        result = runs("--json", "--key", key, *more)
        assert result.exit_code == 0, result.output
        by_id = {run_id: name for name, run_id in planted.items()}
        return {by_id[row["id"]]: row["touched"] for row in json.loads(result.stdout)}

    assert touched("STK1") == {"e": ["conflict stale_source → kept_warehouse"], "a": ["update"]}
    assert touched("STK2") == {"e": ["soft_delete"], "a": ["insert"]}
    assert touched("STK3") == {"e": ["gap closed"], "a": ["gap opened"]}
    assert touched("STK9") == {"b": ["error"]}
    assert touched("LEAD7") == {"c": ["quarantine"]}
    assert touched("NOPE") == {}
    assert touched("STK2", "--status", "succeeded", "--since", "2025-03-02") == {
        "e": ["soft_delete"]
    }
    table = runs("--key", "STK1")
    assert table.exit_code == 0, table.output
    assert "touched" in table.stdout.splitlines()[0]
    assert "conflict stale_source → kept_warehouse" in table.stdout


def test_csv_is_a_header_and_a_row_per_run_with_utc_offsets(planted):
    result = runs("--format", "csv", "--entity", "dealer_stock")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [int(row["id"]) for row in rows] == [planted["e"], planted["b"], planted["a"]]
    first = rows[-1]
    assert first["started_at"] == "2025-03-01T10:00:00+00:00"
    assert first["finished_at"] == "2025-03-01T10:01:30+00:00"
    assert first["seconds"] == "90.0" and first["status"] == "succeeded"
    assert first["source"] == "dealer_feed" and first["fetched"] == "200"
    assert json.loads(rows[1]["error_counts"]) == {"network": 1}
    assert "touched" not in rows[0]
    keyed = list(csv.DictReader(io.StringIO(runs("--format", "csv", "--key", "STK1").stdout)))
    assert [row["touched"] for row in keyed] == ["conflict stale_source → kept_warehouse", "update"]
    empty = runs("--format", "csv", "--status", "running", "--source", "dealer_feed")
    assert empty.exit_code == 0 and empty.stdout.splitlines() == [",".join(rows[0])]


def test_json_timestamps_carry_their_offset_and_json_is_an_alias(planted):
    by_format = runs("--format", "json", "--status", "running", "--status", "succeeded")
    by_alias = runs("--json", "--status", "running", "--status", "succeeded")
    assert by_format.exit_code == 0 and by_format.stdout == by_alias.stdout
    rows = json.loads(by_format.stdout)
    assert [row["id"] for row in rows] == [planted[n] for n in ("f", "e", "d", "a")]
    for row in rows:
        started = datetime.fromisoformat(row["started_at"])
        assert started.utcoffset() == timedelta(0), row["started_at"]
    running = next(row for row in rows if row["status"] == "running")
    assert running["finished_at"] is None and running["seconds"] is None
    assert datetime.fromisoformat(rows[-1]["started_at"]) == at(1, 10)
    assert json.loads(runs("--json", "--source", "ga4").stdout) == []
    clash = runs("--json", "--format", "csv")
    assert clash.exit_code == 2 and "disagree" in clash.stderr


def test_the_table_shows_a_line_per_run_and_says_when_nothing_matches(planted):
    result = runs("--source", "dealer_feed", "--limit", "2")
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert "started (UTC)" in header and "status" in header and "message" in header
    assert len(lines) == 2
    assert "2025-03-05 09:00:00" in lines[0] and "dealer_feed.dealer_stock" in lines[0]
    assert "succeeded" in lines[0] and "run e" in lines[0] and "90.0" in lines[0]
    assert "dealer_feed.dealer_leads" in lines[1] and "warning" in lines[1]
    assert "the newest 2 shown; more match" in result.stderr
    everything = runs("--source", "dealer_feed", "--limit", "0")
    assert len(everything.stdout.splitlines()) == 5 and "more match" not in everything.stderr
    exact = runs("--source", "dealer_feed", "--limit", "4")
    assert "more match" not in exact.stderr  # exactly 4 match: nothing was cut off
    nothing = runs("--source", "ga4")
    assert nothing.exit_code == 0 and nothing.stdout == "no sync matches\n"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--source", "dealer_fed"], "--source dealer_fed: not a known source"),
        (["--entity", "dealer_stok"], "--entity dealer_stok: not a known entity"),
        (
            ["--source", "ga4", "--entity", "dealer_stock"],
            "--entity dealer_stock: not a known entity of ga4",
        ),
        (["--status", "ok"], "--status ok: not a known status"),
        (["--since", "yesterday"], "--since 'yesterday' is not an ISO date or datetime"),
        (["--since", "2025-03-05", "--until", "2025-03-01"], "is not before --until"),
    ],
)
def test_a_filter_naming_something_unknown_is_an_error_listing_what_is_known(planted, args, said):
    result = runs(*args)
    assert result.exit_code == 2, result.output
    assert said in result.stderr and result.stdout == ""
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    if args == ["--source", "dealer_fed"]:
        known = "dealer_feed, ga4, legacy_erp, n8n_events, retired_feed, seller_sheet"
        assert f"one of: {known}" in result.stderr
    if args == ["--entity", "dealer_stok"]:
        assert "dealer_leads, dealer_stock," in result.stderr and "retired_things" in result.stderr
    if args == ["--source", "ga4", "--entity", "dealer_stock"]:
        known = "ga4_daily_totals, ga4_daily_traffic, ga4_events, ga4_landing_pages"
        assert f"one of: {known}" in result.stderr
    if args[0] == "--status":
        assert "one of: failed, running, succeeded, warning" in result.stderr


def test_an_unmigrated_warehouse_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNC_PLATFORM_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = runs()
    assert result.exit_code == 2
    assert "sync-platform db upgrade" in result.stderr and "Traceback" not in result.output


def test_a_large_export_streams_every_run(warehouse_url, monkeypatch):
    monkeypatch.setenv("SYNC_PLATFORM_WAREHOUSE_URL", warehouse_url)
    engine = sa.create_engine(warehouse_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(
            sa.insert(sync_runs),
            [
                {
                    "source": "dealer_feed",
                    "entity": "dealer_stock",
                    "trigger": "scheduled",
                    "status": "succeeded",
                    "started_at": at(1, 0) + timedelta(minutes=n),
                    "finished_at": at(1, 0) + timedelta(minutes=n, seconds=5),
                }
                for n in range(5000)
            ],
        )
    engine.dispose()
    result = runs("--format", "csv", "--limit", "0")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 5000 and rows[0]["started_at"] == "2025-03-04T11:19:00+00:00"
    assert len(json.loads(runs("--json", "--limit", "0").stdout)) == 5000
