"""The stored row hash is a fixed function of the values, forever."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl

from sync_platform.engine.hashing import row_hash_expr

ROW = {
    "text": ["Corolla"],
    "number": [2019],
    "money": [Decimal("28990.50")],
    "moment": [datetime(2026, 1, 1, 10, 0, tzinfo=UTC)],
    "day": [date(2026, 1, 1)],
    "ratio": [0.1],
    "missing": [None],
}
SCHEMA = {
    "text": pl.String,
    "number": pl.Int64,
    "money": pl.Decimal(12, 2),
    "moment": pl.Datetime("us", "UTC"),
    "day": pl.Date,
    "ratio": pl.Float64,
    "missing": pl.String,
}


def hash_of(frame: pl.DataFrame, columns: list[str]) -> int:
    return frame.select(row_hash_expr(columns)).item()


def test_known_rows_hash_to_pinned_values():
    """If this fails after an upgrade, stored hashes no longer match: every row would be
    rewritten on the next sync. Pin the old behaviour instead of updating the numbers."""
    frame = pl.DataFrame(ROW, schema=SCHEMA)
    assert hash_of(frame, list(SCHEMA)) == PINNED_ALL
    assert hash_of(frame, ["text"]) == PINNED_TEXT


def test_order_nulls_and_every_value_matter():
    frame = pl.DataFrame({"a": ["x", "", None], "b": ["", "x", "x"]})
    hashes = frame.select(row_hash_expr(["a", "b"])).to_series().to_list()
    assert len(set(hashes)) == 3  # ("x",""), ("","x") and (null,"x") all differ
    swapped = frame.select(row_hash_expr(["b", "a"])).to_series().to_list()
    assert swapped[0] != hashes[0]


PINNED_ALL = 7463500249568391697
PINNED_TEXT = 1529319149672769263  # xxh3_64("Corolla") as a signed 64-bit integer
