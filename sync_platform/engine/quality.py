"""Data-quality figures of one sync, shown with its materialization (the UI plots them):
null rate of each required column among the fetched records, duplicate keys, quarantine
rate, and rows fetched against the entity's trailing median.

`robust_z` is the anomaly score the `volume_normal` check uses: a modified z-score over the
trailing syncs (median and median absolute deviation), which a single outlier in the
history cannot drag along the way a mean and standard deviation would.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import sqlalchemy as sa

from sync_platform.config.models import EntityConfig
from sync_platform.engine.ports import RejectedRecord
from sync_platform.warehouse.platform_tables import sync_runs

TRAILING = 14
MAX_Z = 99.0  # the score of any change after a history of one value
DUPLICATE_MARKERS = ("more than once",)


def trailing_fetched(
    connection: sa.Connection, source: str, entity: str, before_id: int
) -> list[int]:
    return list(
        connection.execute(
            sa.select(sync_runs.c.fetched)
            .where(
                sync_runs.c.source == source,
                sync_runs.c.entity == entity,
                sync_runs.c.id < before_id,
                sync_runs.c.status.in_(("succeeded", "warning")),
            )
            .order_by(sync_runs.c.id.desc())
            .limit(TRAILING)
        ).scalars()
    )


def robust_z(value: float, history: Sequence[float]) -> float | None:
    """0.6745 (x - median) / MAD; None without enough history. Where most of the history is
    one value (MAD 0), the mean absolute deviation stands in (x - median) / (1.2533 MeanAD),
    and a history of one value only scores any other value at +-MAX_Z: a steady feed
    that suddenly serves a third of its rows must not go unnoticed."""
    if len(history) < 5:
        return None
    median = statistics.median(history)
    mad = statistics.median(abs(x - median) for x in history)
    if mad:
        return 0.6745 * (value - median) / mad
    mean_ad = statistics.fmean(abs(x - median) for x in history)
    if mean_ad:
        return max(-MAX_Z, min(MAX_Z, (value - median) / (1.253314 * mean_ad)))
    return 0.0 if value == median else math.copysign(MAX_Z, value - median)


def quality_metrics(
    entity: EntityConfig, fetched: int, rejects: list[RejectedRecord], history: list[int]
) -> dict[str, float]:
    reasons = [reason for reject in rejects for reason in reject.reasons]
    metrics: dict[str, float] = {}
    for column, spec in entity.fields.items():
        if spec.required:
            missing = sum(r.startswith(f"{column}: required value is missing") for r in reasons)
            metrics[f"null_rate_{column}"] = round(missing / fetched, 4) if fetched else 0.0
    duplicates = sum(any(m in r for m in DUPLICATE_MARKERS) for r in reasons)
    metrics["duplicate_keys"] = duplicates
    metrics["quarantine_rate"] = round(len(rejects) / fetched, 4) if fetched else 0.0
    if history:
        median = statistics.median(history)
        metrics["rows_vs_median"] = round(fetched / median, 3) if median else 0.0
    return metrics
