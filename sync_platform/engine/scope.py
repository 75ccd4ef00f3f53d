"""A slice of an entity table that one sync is complete for (e.g. a range of GA4 days).

`{"date": day}` is one value; `{"date": (first, last)}` an inclusive range. A complete
snapshot of a scope soft-deletes only rows inside it, and verification compares only them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

Scope = dict[str, Any]


def scope_conditions(table: sa.Table, scope: Scope | None) -> list[sa.ColumnElement[bool]]:
    conditions = []
    for column, value in (scope or {}).items():
        if isinstance(value, tuple):
            first, last = value
            conditions.append(table.c[column].between(first, last))
        else:
            conditions.append(table.c[column] == value)
    return conditions


def describe(scope: Scope | None) -> str | None:
    """The scope as audit text ("date 2026-11-20…2026-11-23")."""
    if not scope:
        return None
    parts = []
    for column, value in scope.items():
        shown = f"{value[0]}…{value[1]}" if isinstance(value, tuple) else str(value)
        parts.append(f"{column} {shown}")
    return ", ".join(parts)
