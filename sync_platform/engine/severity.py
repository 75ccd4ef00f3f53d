"""How much a difference matters, by the entity's `reconcile:` block in its YAML.

A missing or extra record is `missing_severity` (default high) when it is active (its
values match `active_when`, or there is no such rule) and `inactive_severity` otherwise (a
sold vehicle); a field difference is the highest severity among the fields that differ,
each field's from `field_severity`, else `default_field_severity` (cosmetic).
"""

from __future__ import annotations

from typing import Any

from sync_platform.config.models import EntityConfig, ReconcileConfig

RANK = {"low": 1, "medium": 2, "high": 3}
# Reconciliation finds the first four; `conflict` is a record both sides changed, held by a
# sync for review (engine/review.py).
KINDS = ("missing", "extra", "status_mismatch", "field_diff", "conflict")


def is_active(rules: ReconcileConfig, values: dict[str, Any] | None) -> bool:
    if not rules.active_when or values is None:
        return True
    return all(values.get(column) in allowed for column, allowed in rules.active_when.items())


def classify(
    entity: EntityConfig, kind: str, fields: list[str], values: dict[str, Any] | None
) -> str:
    rules = entity.reconcile or ReconcileConfig()
    if kind in ("missing", "extra"):
        return rules.missing_severity if is_active(rules, values) else rules.inactive_severity
    return max(
        (rules.field_severity.get(f, rules.default_field_severity) for f in fields),
        key=RANK.__getitem__,
        default=rules.default_field_severity,
    )
