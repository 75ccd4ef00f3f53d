"""Row hashes that stay the same across library versions, so stored hashes stay comparable.

Each value is rendered as text (polars' casts to string are fixed formats: ISO dates,
shortest round-trip floats, plain decimals), nulls as a marker no text value can be,
columns joined in config order with a unit separator, and hashed with xxh3-64 from the
polars-hash plugin (a fixed algorithm, unlike polars' own `hash()`, which may change
between releases). The 64-bit result is stored as a signed BIGINT.
"""

from __future__ import annotations

import polars as pl
import polars_hash  # noqa: F401 - registers the .nchash namespace

NULL_MARKER = "\x00"
SEPARATOR = "\x1f"


def row_hash_expr(columns: list[str]) -> pl.Expr:
    rendered = [pl.col(column).cast(pl.String).fill_null(NULL_MARKER) for column in columns]
    joined = pl.concat_str(rendered, separator=SEPARATOR)
    return joined.nchash.xxh3_64().reinterpret(signed=True)


def with_row_hash(frame: pl.DataFrame, columns: list[str], name: str = "_row_hash") -> pl.DataFrame:
    return frame.with_columns(row_hash_expr(columns).alias(name))
