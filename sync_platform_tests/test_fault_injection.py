"""Fault injection: hostile records a source may send. Each bad record is quarantined with its
reason, the same on SQLite and PostgreSQL, and never fails the rest of its entity."""

from __future__ import annotations

import json

import sqlalchemy as sa

from sync_platform.config import cached_source_config
from sync_platform.engine.mapping import MAX_TEXT_CHARS, map_records
from sync_platform.warehouse.platform_tables import sync_quarantine
from sync_platform_tests.dagster_runs import materializations, run_job
from sync_platform_tests.test_dealer_end_to_end import source_stock, warehouse_stock

STOCK = cached_source_config("dealer_feed").entities["dealer_stock"]


def vehicle(number: int, **fields) -> dict:
    return {
        "StockNumber": f"STK{number:06d}",
        "VIN": f"1HGCM82633A{number:06d}",
        "Make": "Ford",
        "Model": "Focus",
        "Year": 2019,
        "Price": 1000,
        "Status": "Available",
        "LastUpdated": "2026-01-01T00:00:00Z",
    } | fields


def test_nul_bytes_and_huge_values_are_quarantined_and_the_rest_loads(source_env, warehouse_url):
    good = source_stock(source_env)
    hostile = {
        3: vehicle(3, Make="Fo\u0000rd"),
        4: vehicle(4, Make="M" * 5_000_000),
        5: vehicle(5, Model="\u0000"),
    }
    for number, record in hostile.items():
        source_env.put_stock(record["StockNumber"], record)

    result = run_job()

    assert result.success
    stock = materializations(result)["dealer_stock"]
    assert (stock["fetched"], stock["quarantined"], stock["inserted"]) == (200, 3, 197)
    hostile_keys = {record["StockNumber"] for record in hostile.values()}
    assert set(warehouse_stock(warehouse_url)) == set(good) - hostile_keys
    engine = sa.create_engine(warehouse_url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                sync_quarantine.c.record_key, sync_quarantine.c.reason, sync_quarantine.c.raw_record
            )
        ).all()
    engine.dispose()
    reasons = {key: reason for key, reason, _ in rows}
    assert reasons == {
        "STK000003": "make: holds a NUL character, which the warehouse cannot store",
        "STK000004": f"make: 5000000 characters, more than the {MAX_TEXT_CHARS} this field "
        "takes (checks.max_length in the entity's YAML)",
        "STK000005": "model: holds a NUL character, which the warehouse cannot store",
    }
    raw = {key: json.loads(text) for key, _, text in rows}
    assert raw["STK000003"]["Make"] == "Fo\u0000rd"  # the record kept exactly, NUL included
    # A second run changes nothing and quarantines the same three again.
    again = materializations(run_job())["dealer_stock"]
    assert (again["quarantined"], again["inserted"], again["updated"]) == (3, 0, 0)


def test_text_that_is_not_unicode_is_refused_per_record():
    """A lone surrogate (a JSON escape like \\ud800) cannot be encoded: it failed the whole
    page before; now only its record is refused."""
    records = [vehicle(1), vehicle(2, Model="x\ud800y"), vehicle(3)]

    typed, rejects = map_records(records, STOCK)

    assert typed.get_column("stock_number").to_list() == ["STK000001", "STK000003"]
    (reject,) = rejects
    assert reject.record_key == "STK000002"
    assert reject.reason == "model: holds text that is not valid Unicode"


def test_a_refused_value_is_quoted_briefly_in_its_reason():
    records = [vehicle(1, Year="9" * 10_000)]

    _, (reject,) = map_records(records, STOCK)

    assert reject.reason.startswith("year: '99999")
    assert reject.reason.endswith("(10,002 chars) is not a valid integer")
    assert len(reject.reason) < 200
