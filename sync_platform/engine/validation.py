"""Pandera (polars) schemas built from the entity config, used twice with one definition:
in the sync, to quarantine bad rows while the rest continue; as Dagster asset checks, to
prove nothing bad reached the warehouse.

pandera (with pandas under it, ~0.6 s) is imported when a schema is first built, not when the
code location loads: only runs validate, and the step forkserver imports it once ahead
(definitions_preload.py).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import polars as pl

from sync_platform.config.models import EntityConfig, FieldChecks, FieldSpec

if TYPE_CHECKING:
    import pandera.polars as pa

POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "integer": pl.Int64(),
    "float": pl.Float64(),
    "boolean": pl.Boolean(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us", "UTC"),
}


def polars_type(spec: FieldSpec) -> pl.DataType:
    if spec.type == "decimal":
        return pl.Decimal(spec.precision, spec.scale)
    return POLARS_TYPES[spec.type]


def _checks(rules: FieldChecks) -> list[pa.Check]:
    import pandera.polars as pa

    checks = []
    if rules.str_length is not None:
        checks.append(pa.Check.str_length(rules.str_length, rules.str_length))
    if rules.min_length is not None or rules.max_length is not None:
        checks.append(pa.Check.str_length(rules.min_length, rules.max_length))
    if rules.ge is not None:
        checks.append(pa.Check.ge(rules.ge))
    if rules.le is not None:
        checks.append(pa.Check.le(rules.le))
    if rules.in_range is not None:
        checks.append(pa.Check.in_range(*rules.in_range))
    if rules.isin is not None:
        checks.append(pa.Check.isin(rules.isin))
    if rules.str_matches is not None:
        checks.append(pa.Check.str_matches(rules.str_matches))
    return checks


def entity_schema(entity: EntityConfig) -> pa.DataFrameSchema:
    """Types, required fields and declared rules of one entity. Key uniqueness is not a row
    rule: the first row of a key loads and later copies are quarantined (loadable.py), and
    the table's primary key holds it in the warehouse."""
    import pandera.polars as pa

    columns = {
        name: pa.Column(polars_type(spec), checks=_checks(spec.checks), nullable=not spec.required)
        for name, spec in entity.fields.items()
    }
    return pa.DataFrameSchema(columns, strict=False, name=entity.name)


def _reason(row: dict) -> str:
    column = row["column"] or ", ".join(row.get("key") or []) or "row"
    check = row["check"]
    if check == "not_nullable":
        return f"{column}: required value is missing"
    case = repr(row["failure_case"])
    case = case if len(case) <= 80 else f"{case[:80]}… ({len(case):,} chars)"
    return f"{column}: {case} fails {check}"


def find_invalid_rows(
    frame: pl.DataFrame, schema: pa.DataFrameSchema, key: list[str]
) -> dict[int, list[str]]:
    """Row position → reasons, for every row that breaks the schema (empty when all pass)."""
    import pandera.polars as pa

    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        failures = errors.failure_cases
    else:
        return {}
    reasons: dict[int, list[str]] = defaultdict(list)
    for row in failures.iter_rows(named=True):
        if row["index"] is None:  # a whole-frame failure (e.g. wrong dtype) concerns every row
            for position in range(frame.height):
                reasons[position].append(_reason(row | {"key": key}))
            continue
        reasons[int(row["index"])].append(_reason(row | {"key": key}))
    return dict(reasons)
