"""One reconciliation of a source: every entity with a `reconcile:` block compared, the
differences recorded, the run audited.

No lease is taken: a reconciliation only reads, and runs under its source's run tag, so
Dagster never runs it beside a sync of the same source; and a source change newer than the
entity's latest good sync is counted as pending, not judged (compare.py).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from sync_platform.config.models import EntityConfig, SourceConfig
from sync_platform.engine.ports import EntitySource
from sync_platform.reconcile import store
from sync_platform.reconcile.compare import EntityComparison, compare_entity

OpenSource = Callable[[EntityConfig], AbstractContextManager[EntitySource]]


@dataclass
class Reconciliation:
    run_id: int
    source: str
    comparisons: dict[str, EntityComparison] = field(default_factory=dict)
    recorded: dict[str, store.Recorded] = field(default_factory=dict)

    def summary(self) -> dict[str, dict]:
        return {
            name: {
                "source_rows": comparison.source_rows,
                "warehouse_rows": comparison.warehouse_rows,
                "pending": comparison.pending,
                "unreadable": len(comparison.unreadable),
                "open": sum(self.recorded[name].counts.values()),
                "new": len(self.recorded[name].opened),
                "ignored": self.recorded[name].ignored,
                "gone": self.recorded[name].gone,
                "by_kind": dict(_total(self.recorded[name].counts, 0)),
                "by_severity": dict(_total(self.recorded[name].counts, 1)),
            }
            for name, comparison in self.comparisons.items()
        }

    def open_count(self, severity: str | None = None) -> int:
        return sum(
            n
            for recorded in self.recorded.values()
            for (_, level), n in recorded.counts.items()
            if severity in (None, level)
        )


def _total(counts: Counter, position: int) -> Counter:
    totals: Counter = Counter()
    for pair, n in counts.items():
        totals[pair[position]] += n
    return totals


def reconciled_entities(source: SourceConfig) -> list[EntityConfig]:
    return [entity for entity in source.entities.values() if entity.reconcile is not None]


def reconcile_source(
    engine: sa.Engine,
    source: SourceConfig,
    open_source: OpenSource,
    *,
    trigger: str = "manual",
    dagster_run_id: str | None = None,
) -> Reconciliation:
    run = Reconciliation(
        store.start_run(engine, source.source, trigger, dagster_run_id), source.source
    )
    try:
        with tempfile.TemporaryDirectory(prefix="reconcile-") as work:
            for entity in reconciled_entities(source):
                with open_source(entity) as entity_source:
                    comparison = compare_entity(
                        engine,
                        source.source,
                        entity,
                        entity_source.pages(None),
                        Path(work) / entity.name,
                    )
                with engine.begin() as connection:
                    run.recorded[entity.name] = store.record_comparison(
                        connection, run.run_id, source.source, comparison
                    )
                run.comparisons[entity.name] = comparison
    except BaseException as exc:
        store.finish_run(engine, run.run_id, "failed", run.summary(), message=str(exc)[:2000])
        raise
    store.finish_run(engine, run.run_id, "succeeded", run.summary())
    return run
