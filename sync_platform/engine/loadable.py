"""Which of a source's records a sync loads: mapped and typed, empty rows skipped, rows that
break the entity's schema quarantined with their reasons, and of each key only the first
occurrence (a later copy with other values is quarantined naming the key and both
positions; one with the same values is the same record read twice, and dropped).

The pipeline applies it page by page (`loadable_page`, then `first_of_each_key` over the
whole read); the soak's verdict applies it to a source's state dump, so what the platform
should hold is judged by the very rule that loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from sync_platform.config.models import EntityConfig
from sync_platform.engine.hashing import row_hash_expr
from sync_platform.engine.mapping import ROW_INDEX, map_records, record_key_expr, record_keys
from sync_platform.engine.ports import Records, RejectedRecord
from sync_platform.engine.validation import entity_schema, find_invalid_rows
from sync_platform.warehouse.entity_tables import ROW_HASH

if TYPE_CHECKING:
    import pandera.polars as pa

SOURCE_ROW = "_source_row"  # the record's 0-based position in the sync's read
# A read this large whose records all lack an optional field is drift, not chance (a JSON
# API may leave out a null field; a handful of records may all have it null).
DRIFT_MIN_RECORDS = 20
Phase = Callable[[str], AbstractContextManager]


def _untimed(_name: str) -> AbstractContextManager:
    return nullcontext()


@dataclass
class LoadablePage:
    frame: pl.DataFrame  # typed rows with ROW_HASH and SOURCE_ROW
    rejects: list[RejectedRecord] = field(default_factory=list)
    skipped: int = 0  # rows empty in every skip_when_empty column


def loadable_page(
    page: Records,
    entity: EntityConfig,
    first_row: int = 0,
    phase: Phase = _untimed,
    schema: pa.DataFrameSchema | None = None,
) -> LoadablePage:
    """One page of records as the rows a sync would load, and the ones it quarantines.
    `first_row` is the page's position in the read; `phase` times "map" and "validate";
    `schema` is the entity's (built once per sync by a caller with many pages)."""
    with phase("map"):
        typed, rejects = map_records(page, entity)
        skipped = 0
        if entity.skip_when_empty:
            empty = pl.all_horizontal(pl.col(c).is_null() for c in entity.skip_when_empty)
            skipped = typed.filter(empty).height
            typed = typed.filter(~empty)
    with phase("validate"):
        invalid = find_invalid_rows(typed, schema or entity_schema(entity), entity.key)
        if invalid:
            keys = record_keys(typed, entity.key)
            positions = typed.get_column(ROW_INDEX)
            for position, reasons in invalid.items():
                rejects.append(RejectedRecord(page[positions[position]], keys[position], reasons))
            typed = typed.filter(~pl.int_range(pl.len()).is_in(list(invalid)))
    with phase("map"):
        frame = typed.with_columns(
            (pl.col(ROW_INDEX) + first_row).alias(SOURCE_ROW),
            row_hash_expr(entity.value_columns).alias(ROW_HASH),
        ).drop(ROW_INDEX)
    return LoadablePage(frame, rejects, skipped)


def first_of_each_key(
    frame: pl.DataFrame, entity: EntityConfig
) -> tuple[pl.DataFrame, list[RejectedRecord]]:
    """The first row of each key loads. A later copy with the same values is the same record
    read twice (an offset-paged source shifts a record across a page boundary when a record
    is added before it mid-read) and is dropped; a later copy whose values differ is
    quarantined, so a key the source repeats is never lost, nor merged twice. `frame` is in
    read order (pages concatenated as they came, SOURCE_ROW rising), so no sort is needed."""
    key = record_key_expr(entity.key).alias("_key")
    first = frame.select(key.is_first_distinct()).to_series()
    if first.all():
        return frame, []
    keyed = frame.with_columns(key)
    differing = keyed.filter(~first & (pl.col(ROW_HASH) != pl.col(ROW_HASH).first().over("_key")))
    loaded_at = dict(
        keyed.filter(first).filter(pl.col("_key").is_in(differing["_key"].implode()))
        .select("_key", SOURCE_ROW)
        .iter_rows()
    )  # fmt: skip
    rejects = [
        RejectedRecord(
            {column: row[column] for column in entity.columns},
            row["_key"],
            [
                f"key: the source returned {row['_key']} more than once, with different "
                f"values; record {loaded_at[row['_key']] + 1} was loaded, this is record "
                f"{row[SOURCE_ROW] + 1}"
            ],
        )
        for row in differing.iter_rows(named=True)
    ]
    return frame.filter(first), rejects


def _has(record: dict, path: str) -> bool:
    """Whether the record carries `path` at all (a null value counts as carried)."""
    value: object = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


@dataclass
class SourceShape:
    """The read's records against the entity's mapping: configured fields no record carried
    (schema drift: a renamed column, an API that dropped a field) and fields the source sends
    that nothing maps (sampled from the first record of each page; `_`-prefixed bookkeeping
    left out)."""

    entity: EntityConfig
    records: int = 0
    found: set[str] = field(default_factory=set)
    unmapped: set[str] = field(default_factory=set)

    def observe(self, page: Records) -> None:
        self.records += len(page)
        if not page:
            return
        looking = {spec.source for spec in self.entity.fields.values()} - self.found
        for record in page:  # stops at the first record once every field was seen
            if not looking:
                break
            carried = {path for path in looking if _has(record, path)}
            self.found |= carried
            looking -= carried
        mapped = {spec.source.split(".")[0] for spec in self.entity.fields.values()}
        self.unmapped |= {
            name for name in page[0] if name not in mapped and not str(name).startswith("_")
        }

    def missing(self) -> dict[str, str]:
        """Warehouse column → source field, for configured fields no record carried."""
        if not self.records:
            return {}
        return {
            column: spec.source
            for column, spec in self.entity.fields.items()
            if spec.source not in self.found
        }

    def drift(self) -> tuple[dict[str, str], dict[str, str]]:
        """(required, optional) fields judged missing, from DRIFT_MIN_RECORDS records;
        nothing where the entity opts out (a smaller read's odd records are quarantined
        one by one instead)."""
        if not self.entity.drift_check or self.records < DRIFT_MIN_RECORDS:
            return {}, {}
        missing = self.missing()
        required = {c: s for c, s in missing.items() if self.entity.fields[c].required}
        return required, {c: s for c, s in missing.items() if c not in required}
