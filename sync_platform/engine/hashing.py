"""Row hashes that stay the same across library versions, so stored hashes stay comparable.

Each value is rendered as text (polars' casts to string are fixed formats: ISO dates,
shortest round-trip floats, plain decimals), a null as a marker no text value can be, and
hashed with xxh3-64 from the polars-hash plugin (a fixed algorithm, unlike polars' own
`hash()`, which may change between releases). The column hashes are folded in config order
FNV-style — `h = h * 1099511628211 XOR column_hash`, wrapping at 2^64 — which is about
three times faster than hashing one concatenated string, and order-sensitive. The 64-bit
result is stored as a signed BIGINT. `test_hashing.py` pins known values: a library
upgrade that changed any of this would fail there, not silently rewrite every row.
"""

from __future__ import annotations

import polars as pl
import polars_hash  # noqa: F401 - registers the .nchash namespace

NULL_MARKER = "\x00"
FNV_PRIME = 1_099_511_628_211


def row_hash_expr(columns: list[str]) -> pl.Expr:
    prime = pl.lit(FNV_PRIME, dtype=pl.UInt64)
    folded = None
    for column in columns:
        value_hash = pl.col(column).cast(pl.String).fill_null(NULL_MARKER).nchash.xxh3_64()
        folded = value_hash if folded is None else (folded * prime) ^ value_hash
    return folded.reinterpret(signed=True)
