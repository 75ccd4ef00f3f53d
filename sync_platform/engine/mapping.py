"""Map raw source records to typed warehouse columns, as the YAML config declares.

Every value goes through text first: extract the declared source field, clean it by the
declared rules (trim, case, null markers, value maps, defaults), then cast to the column
type. A value that is present but does not cast is a reason to quarantine the record,
never a silent NULL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import polars as pl

from sync_platform.config.models import EntityConfig, FieldSpec
from sync_platform.engine.ports import RejectedRecord

ROW_INDEX = "_row_index"
# The longest text value a field takes unless its YAML sets checks.max_length: a longer one
# is quarantined (a 5 MB vehicle make is a broken source, not data).
MAX_TEXT_CHARS = 100_000
SHOWN_CHARS = 80  # of a refused value, in its quarantine reason
TRUE_WORDS = ["true", "t", "yes", "y", "1"]
FALSE_WORDS = ["false", "f", "no", "n", "0"]


def _as_text(value: Any) -> str | None:
    """A value as text, written exactly as the fast path (polars' cast) writes it: a record
    maps the same whichever records share its page."""
    if value is None or type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return repr(value)
    if type(value) is float:  # 2015.0 → "2015", 1e20 → "100000000000000000000"
        return _polars_text([value]).item()
    return json.dumps(value, sort_keys=True, default=str)


def _polars_text(values: list[Any]) -> pl.Series:
    """Scalars as text by polars' own conversion (the fast path's)."""
    return pl.from_dicts(
        [{"v": value} for value in values], schema={"v": pl.String}, strict=False
    ).to_series()


def _text_column(values: list[Any]) -> pl.Series:
    if any(isinstance(value, (dict, list)) for value in values):
        return pl.Series([_as_text(value) for value in values], dtype=pl.String)
    return _polars_text(values)


def _dig(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def extract_text_columns(records: list[dict[str, Any]], entity: EntityConfig) -> pl.DataFrame:
    """One String column per configured field, named by the warehouse column."""
    sources = {column: spec.source for column, spec in entity.fields.items()}
    flat = all("." not in source for source in sources.values())
    if flat and len(set(sources.values())) == len(sources):
        try:
            frame = pl.from_dicts(
                records, schema={source: pl.String for source in sources.values()}, strict=False
            )
            return frame.rename({source: column for column, source in sources.items()})
        except (pl.exceptions.ComputeError, pl.exceptions.SchemaError, TypeError):
            pass  # nested values somewhere: take the slow, exact path below
    return pl.DataFrame(
        {
            column: _text_column([_dig(record, source) for record in records])
            for column, source in sources.items()
        },
        schema={column: pl.String for column in sources},
    )


def _clean(column: str, spec: FieldSpec) -> pl.Expr:
    expr = pl.col(column)
    for transform in spec.transforms:
        match transform:
            case "strip":
                expr = expr.str.strip_chars()
            case "upper":
                expr = expr.str.to_uppercase()
            case "lower":
                expr = expr.str.to_lowercase()
            case "collapse_spaces":
                expr = expr.str.replace_all(r"\s+", " ")
            case "strip_currency":  # "$1,250.00" → "1250.00"; anything else stays to fail
                expr = expr.str.replace_all(r"[$€£¥,\s]", "")
    if spec.null_values:
        expr = pl.when(expr.is_in(spec.null_values)).then(None).otherwise(expr)
    if spec.value_map:
        mapping = {str(k): _as_text(v) for k, v in spec.value_map.items()}
        expr = expr.replace(mapping)
    if spec.default is not None:
        expr = expr.fill_null(pl.lit(_as_text(spec.default)))
    return expr.alias(column)


def _cast(column: str, spec: FieldSpec) -> pl.Expr:
    text = pl.col(column)
    match spec.type:
        case "string":
            typed = text
        case "integer":
            typed = text.cast(pl.Int64, strict=False)
        case "float":
            typed = text.cast(pl.Float64, strict=False)
        case "decimal":
            typed = (
                text.cast(pl.Decimal(38, 18), strict=False)
                .round(spec.scale)
                .cast(pl.Decimal(spec.precision, spec.scale), strict=False)
            )
        case "boolean":
            lowered = text.str.to_lowercase()
            typed = (
                pl.when(lowered.is_in(TRUE_WORDS))
                .then(True)
                .when(lowered.is_in(FALSE_WORDS))
                .then(False)
                .otherwise(None)
            )
        case "date":
            typed = pl.coalesce(
                [text.str.to_date(fmt, strict=False) for fmt in spec.parse_formats()]
            )
        case "datetime":
            typed = pl.coalesce([_to_utc_datetime(text, fmt) for fmt in spec.parse_formats()])
    return typed.alias(column)


def _to_utc_datetime(text: pl.Expr, fmt: str) -> pl.Expr:
    if "z" in fmt or fmt.endswith("Z"):
        return text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")
    naive = text.str.to_datetime(fmt, strict=False, time_unit="us")
    return naive.dt.replace_time_zone("UTC")


def cast_text_columns(text: pl.DataFrame, fields: dict[str, FieldSpec]) -> pl.DataFrame:
    """Warehouse text → typed columns (reading back). Dates and timestamps are parsed in the
    warehouse's own formats, not the source's (GA4 sends 20261120; the warehouse says
    2026-11-20)."""
    return text.with_columns(
        _cast(column, spec.model_copy(update={"formats": None})) for column, spec in fields.items()
    )


def record_key_expr(key: list[str]) -> pl.Expr:
    """The record key as text ('|'-joined for composite keys), as audit tables store it."""
    return pl.concat_str([pl.col(column).cast(pl.String) for column in key], separator="|")


def record_keys(frame: pl.DataFrame, key: list[str]) -> pl.Series:
    return frame.select(record_key_expr(key)).to_series()


def shown(value: Any) -> str:
    """A value as a quarantine reason quotes it: bounded, whatever its size."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}… ({len(text):,} chars)"


def _text_limit(spec: FieldSpec) -> int:
    return spec.checks.max_length or MAX_TEXT_CHARS


def _unstorable(text: pl.DataFrame, entity: EntityConfig) -> pl.DataFrame:
    """Per field, why a value cannot be stored as it is (None: it can): a NUL character
    (PostgreSQL text refuses it; SQLite would keep it, so neither does), or longer than the
    field allows."""
    return text.select(
        pl.when(pl.col(column).str.contains("\x00", literal=True))
        .then(pl.lit(f"{column}: holds a NUL character, which the warehouse cannot store"))
        .when(pl.col(column).str.len_chars() > _text_limit(spec))
        .then(
            pl.format(
                "{}: {} characters, more than the {} this field takes (checks.max_length in "
                "the entity's YAML)",
                pl.lit(column),
                pl.col(column).str.len_chars(),
                pl.lit(_text_limit(spec)),
            )
        )
        .alias(column)
        for column, spec in entity.fields.items()
    )


def _not_unicode(
    records: list[dict[str, Any]], entity: EntityConfig
) -> tuple[list[dict[str, Any]], list[RejectedRecord]]:
    """Records holding text that is not valid Unicode (a lone surrogate from a JSON escape):
    refused one by one, so they never fail their page."""
    kept, rejects = [], []
    for record in records:
        reasons = []
        for column, spec in entity.fields.items():
            value = _as_text(_dig(record, spec.source))
            if value is not None and not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    reasons.append(f"{column}: holds text that is not valid Unicode")
        if not reasons:
            kept.append(record)
            continue
        key = "|".join(
            (_as_text(_dig(record, entity.fields[c].source)) or "")
            .encode("utf-8", "backslashreplace")
            .decode()
            for c in entity.key
        )
        rejects.append(RejectedRecord(record, key, reasons))
    return kept, rejects


def map_records(
    records: list[dict[str, Any]], entity: EntityConfig
) -> tuple[pl.DataFrame, list[RejectedRecord]]:
    """Typed frame (with ROW_INDEX pointing into `records`) and the records that cannot be
    stored: not valid Unicode, a NUL, too long, or a value that does not cast."""
    try:
        text = extract_text_columns(records, entity)
        refused: list[RejectedRecord] = []
    except UnicodeEncodeError:
        records, refused = _not_unicode(records, entity)
        text = extract_text_columns(records, entity)
    text = text.with_columns(_clean(column, spec) for column, spec in entity.fields.items())
    typed = text.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW_INDEX),
        *(_cast(column, spec) for column, spec in entity.fields.items()),
    )
    unstorable = _unstorable(text, entity)
    failed = pl.any_horizontal(
        (text.get_column(c).is_not_null() & typed.get_column(c).is_null())
        | unstorable.get_column(c).is_not_null()
        for c in entity.fields
    )
    bad_rows = typed.filter(failed).get_column(ROW_INDEX).to_list()
    if not bad_rows:
        return typed, refused
    keys = record_keys(text, entity.key)
    for row in bad_rows:
        reasons = []
        for column, spec in entity.fields.items():
            if (why := unstorable[row, column]) is not None:
                reasons.append(why)
            elif text[row, column] is not None and typed[row, column] is None:
                reasons.append(f"{column}: {shown(text[row, column])} is not a valid {spec.type}")
        refused.append(RejectedRecord(records[row], shown_key(keys[row]), reasons))
    return typed.filter(~failed), refused


def mapped_keys(pages: Iterable[list[dict[str, Any]]], entity: EntityConfig) -> pl.Series:
    """The record keys of `pages` (a key listing, or full records), cleaned by the key
    fields' own rules, as the data's keys are."""
    key_fields = {column: entity.fields[column] for column in entity.key}
    key_entity = entity.model_copy(update={"fields": key_fields})
    listed = []
    for page in pages:
        if page:
            typed, _ = map_records(page, key_entity)
            listed.append(record_keys(typed, entity.key))
    return pl.concat(listed) if listed else pl.Series(dtype=pl.String)


def jsonable(value: Any) -> Any:
    """A typed value as a JSON document keeps it (audit rows, reports): numbers and text as
    they are, dates and times in ISO form, decimals as exact text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def shown_key(key: str | None) -> str | None:
    """A record key as audit tables keep it: without NUL, and bounded."""
    if key is None:
        return None
    key = key.replace("\x00", "\\x00")
    return key if len(key) <= 200 else key[:200] + "…"
