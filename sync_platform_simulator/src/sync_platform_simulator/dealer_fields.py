"""What the dealer API accepts as a vehicle or a lead in a write: each field's check and its
JSON schema, one table per record type, so the validation and the OpenAPI schema cannot
disagree. Field names and types are those the listings serve (see `dealer.py`).

A check returns the value as stored (timestamps normalised to the feed's `Z` form, prices
to numbers) or raises `ValueError` saying what is wrong. Messages quote at most a short
prefix of what the client sent, so an error body never echoes an unbounded request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sync_platform_simulator.dealer import (
    LEAD_SOURCES,
    LEAD_STATUSES,
    VEHICLE_STATUSES,
    VIN_ALPHABET,
    Record,
    iso,
    parse_time,
)

QUOTE_LIMIT = 24  # characters of a client's value or field name an error message repeats
LISTED_LIMIT = 5  # unknown fields named in one message; the rest are counted
TEXT_LIMIT = 200
STOCK_NUMBER_PATTERN = r"^STK[0-9]{6}$"
VIN_PATTERN = f"^[{VIN_ALPHABET}]{{17}}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def quote(value: Any) -> str:
    """A client's value, cut to a short prefix, for an error message (text in quotes)."""
    shown = value if isinstance(value, str) else repr(value)
    cut = shown[:QUOTE_LIMIT] + "…" if len(shown) > QUOTE_LIMIT else shown
    return repr(cut) if isinstance(value, str) else cut


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "an array" if isinstance(value, list) else "an object"


@dataclass(frozen=True)
class FieldRule:
    schema: dict[str, Any]
    clean: Callable[[Any], Any]


def text(pattern: str | None = None, hint: str = "") -> FieldRule:
    matcher = re.compile(pattern) if pattern else None

    def clean(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be text, not {json_kind(value)}")
        if not value.strip() or len(value) > TEXT_LIMIT:
            raise ValueError(f"must be 1 to {TEXT_LIMIT} characters")
        if matcher and not matcher.match(value):
            raise ValueError(f"must be {hint} (got {quote(value)})")
        return value

    schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": TEXT_LIMIT}
    return FieldRule(schema | ({"pattern": pattern} if pattern else {}), clean)


def choice(values: Iterable[str]) -> FieldRule:
    allowed = list(values)

    def clean(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be text, not {json_kind(value)}")
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)} (got {quote(value)})")
        return value

    return FieldRule({"type": "string", "enum": allowed}, clean)


def integer(minimum: int, maximum: int | None = None) -> FieldRule:
    def clean(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, not {json_kind(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"must be {bound} (got {quote(value)})")
        return value

    schema = {"type": "integer", "minimum": minimum}
    return FieldRule(schema | ({"maximum": maximum} if maximum is not None else {}), clean)


def money() -> FieldRule:
    def clean(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, not {json_kind(value)}")
        if not math.isfinite(value) or value < 0 or round(value, 2) != value:
            raise ValueError(f"must be a number >= 0 with at most 2 decimals (got {quote(value)})")
        return float(value)

    return FieldRule({"type": "number", "minimum": 0, "multipleOf": 0.01}, clean)


def timestamp() -> FieldRule:
    def clean(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be an ISO 8601 timestamp, not {json_kind(value)}")
        moment = parse_time(value)
        if moment is None:
            raise ValueError(f"must be an ISO 8601 timestamp (got {quote(value)})")
        return iso(moment)

    return FieldRule({"type": "string", "format": "date-time"}, clean)


def nullable(rule: FieldRule) -> FieldRule:
    return FieldRule(
        {"anyOf": [rule.schema, {"type": "null"}]},
        lambda value: None if value is None else rule.clean(value),
    )


STOCK_NUMBER = text(STOCK_NUMBER_PATTERN, "STK followed by 6 digits")
VEHICLE_FIELDS: Mapping[str, FieldRule] = {
    "StockNumber": STOCK_NUMBER,
    "VIN": text(VIN_PATTERN, "17 characters from A-H, J-N, P, R-Z, 0-9"),
    "Make": text(),
    "Model": text(),
    "Badge": nullable(text()),
    "Year": integer(1900, 2100),
    "Odometer": integer(0),
    "Price": money(),
    "Status": choice(VEHICLE_STATUSES),
    "Colour": text(),
    "BodyType": text(),
    "FuelType": text(),
    "Transmission": text(),
    "Location": text(),
}
LEAD_FIELDS: Mapping[str, FieldRule] = {
    "LeadId": integer(1),
    "StockNumber": nullable(STOCK_NUMBER),
    "CustomerName": text(),
    "Email": text(EMAIL_PATTERN, "an e-mail address"),
    "Phone": text(),
    "Source": choice(LEAD_SOURCES),
    "Status": choice(LEAD_STATUSES),
    "CreatedAt": timestamp(),
}


def clean_record(
    rules: Mapping[str, FieldRule], body: Any, *, complete: bool, server_fields: Iterable[str]
) -> tuple[Record, list[str]]:
    """The body's fields checked and normalised, and every problem found (empty if none).

    `complete` (a PUT) requires every field; `server_fields` (the record's timestamp) are
    set by the server alone, so a client sending one is told so rather than ignored.
    """
    if not isinstance(body, dict):
        return {}, [f"the body must be a JSON object, not {json_kind(body)}"]
    problems: list[str] = []
    server_set = [name for name in server_fields if name in body]
    problems += [f"{name} is set by the server; leave it out" for name in server_set]
    unknown = [name for name in body if name not in rules and name not in server_set]
    if unknown:
        named = ", ".join(quote(name) for name in unknown[:LISTED_LIMIT])
        more = f" and {len(unknown) - LISTED_LIMIT} more" if len(unknown) > LISTED_LIMIT else ""
        problems.append(f"unknown field{'s' if len(unknown) > 1 else ''} {named}{more}")
    if complete and (missing := [name for name in rules if name not in body]):
        problems.append(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    cleaned: Record = {}
    for name, rule in rules.items():
        if name in body:
            try:
                cleaned[name] = rule.clean(body[name])
            except ValueError as error:
                problems.append(f"{name} {error}")
    return cleaned, problems


def record_schema(
    rules: Mapping[str, FieldRule], *, complete: bool, server_fields: Iterable[str] = ()
) -> dict[str, Any]:
    """The JSON schema of a write body (or, with `server_fields`, of the stored record)."""
    properties = {name: rule.schema for name, rule in rules.items()}
    properties |= {name: {"type": "string", "format": "date-time"} for name in server_fields}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if complete:
        schema["required"] = list(properties)
    else:
        schema["minProperties"] = 1
    return schema
