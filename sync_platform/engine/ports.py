"""The one seam between a source and the engine: what a source hands the engine for one
entity (`EntitySource`), what a caller asks for (`SyncRequest`) and what it gets back
(`SyncReport`, with the merge's and verification's figures).

Kept small and free of the engine's machinery: a source's Dagster resource builds an
`EntitySource` from its plain client; the orchestration layer builds the request and reads
the report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sync_platform.config.models import EntityConfig

if TYPE_CHECKING:
    import polars as pl
    import sqlalchemy as sa


@dataclass
class RejectedRecord:
    """A source record that cannot enter the warehouse, with every reason found."""

    raw: dict[str, Any]
    record_key: str | None
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


Records = list[dict[str, Any]]
# A source's bookkeeping run inside the load transaction: (connection, sync run id, rejects).
OnCommit = Callable[["sa.Connection", int, list[RejectedRecord]], None]


@dataclass
class EntitySource:
    """What a source client provides for one entity.

    `pages(since)` yields pages of raw records (`since` is the incremental cursor minus the
    overlap margin, or None for a full read). `key_listing()`, when the source can list its
    keys cheaply and independently, yields raw records holding just the key fields;
    verification then compares the warehouse with that listing rather than with what was
    fetched.
    """

    pages: Callable[[datetime | None], Iterable[Records]]
    key_listing: Callable[[], Iterable[Records]] | None = None
    # What the source said about the data it sent (e.g. GA4 sampling), once pages are read;
    # shown with the sync's figures.
    extra_metadata: Callable[[], dict[str, Any]] | None = None
    # What is read, in words an operator knows ("GA4 property 123", "spreadsheet X, range
    # Sellers!A1:H"), for alerts about the read itself.
    subject: str | None = None
    # The source's own bookkeeping that must commit in the load transaction, with the data
    # (the webhook inbox marks what it handed over processed or quarantined); called with
    # the connection, the sync run id and the rejected records.
    on_commit: OnCommit | None = None
    # Writes one record back to the source, where the source accepts writes (a
    # reconciliation's "keep local" and "merge"): its key, the fields in the source's names,
    # and whether they replace the whole record (else only these fields change).
    push: Callable[[str, dict[str, Any], bool], Any] | None = None


@dataclass
class SyncRequest:
    source: str
    entity: EntityConfig
    trigger: str = "manual"
    dagster_run_id: str | None = None
    partition_key: str | None = None
    full_refresh: bool = False  # incremental entity: read everything, treat as a snapshot
    allow_mass_delete: bool = False
    scope: dict[str, Any] | None = None  # complete snapshot of this slice only
    only_keys: list[str] | None = None  # a targeted resync of these record keys
    # A person chose the source's version (a resolution): records changed on both sides
    # take it, whatever the entity's conflict_strategy.
    force_source: bool = False
    # column → (parent table, parent column) that must exist before a row is loaded
    references: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def incremental(self) -> bool:
        return self.entity.sync_mode == "incremental" and not self.full_refresh

    @property
    def kind(self) -> str:
        """What the sync reads, recorded with it so volume checks compare like with like."""
        if self.only_keys:
            return "keys"
        if self.incremental:
            return "changes"
        return "slice" if self.scope else "snapshot"

    @property
    def complete_snapshot(self) -> bool:
        """The fetched rows are everything the source has (in scope): vanished rows go."""
        return not self.incremental and not self.only_keys


@dataclass
class MergeOutcome:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    soft_deleted: int = 0
    active_before: int = 0
    delete_refused: str | None = None
    changes: pl.DataFrame | None = None  # record_key, operation: what was written
    conflicts: list[dict] = field(default_factory=list)
    # Records both sides changed, held at the warehouse's version for a person to decide
    # (conflict_strategy manual_review): record_key, fields, incoming, current, both stamps.
    review: list[dict] = field(default_factory=list)


@dataclass
class Verification:
    status: str  # passed | gaps
    source_count: int
    warehouse_count: int
    missing_keys: list[str] = field(default_factory=list)
    # active in the warehouse, absent from a complete source key set (e.g. a refused delete)
    unexpected_keys: list[str] = field(default_factory=list)
    gaps_opened: int = 0
    gaps_resolved: int = 0
    unrecoverable: list[str] = field(default_factory=list)
    # the missing keys whose gaps are unrecoverable (now or before): the platform gave up
    lost_keys: list[str] = field(default_factory=list)
    # the merge refused a mass deletion: the unexpected keys wait for a person
    deletes_refused: bool = False

    @property
    def gap_count(self) -> int:
        return len(self.missing_keys)

    @property
    def healing(self) -> bool:
        """Out of step in a way the platform heals without a person: every missing key is a
        gap the resync is still working on (none lost), and unexpected keys, if any, are not
        a refused deletion (the source's key listing was read after its data and a record
        was deleted in between: the next snapshot soft-deletes it)."""
        if self.lost_keys or (self.unexpected_keys and self.deletes_refused):
            return False
        return bool(self.missing_keys or self.unexpected_keys)

    @property
    def unexpected_count(self) -> int:
        return len(self.unexpected_keys)


@dataclass
class SyncReport:
    sync_run_id: int
    source: str
    entity: str
    status: str = "running"
    fetched: int = 0
    quarantined: int = 0
    failed: int = 0
    held: int = 0
    held_for_review: int = 0  # new records both sides changed, kept for a person (review.py)
    released: int = 0
    skipped: int = 0  # rows with nothing to load (the entity's skip_when_empty columns)
    merge: MergeOutcome = field(default_factory=MergeOutcome)
    verification: Verification | None = None
    phase_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    error_counts: dict[str, int] = field(default_factory=dict)
    quarantine_reasons: Counter = field(default_factory=Counter)
    cursor_before: str | None = None
    cursor_after: str | None = None
    record_log_truncated: bool = False
    quality: dict[str, float] = field(default_factory=dict)
    # schema drift: column → source field no record of a large enough read carried, and
    # source fields nothing maps
    fields_missing: dict[str, str] = field(default_factory=dict)
    fields_unmapped: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(self.phase_seconds.values())

    @property
    def rows_per_second(self) -> float:
        return self.fetched / self.total_seconds if self.total_seconds else 0.0

    @property
    def message(self) -> str | None:
        notes = []
        if self.merge.delete_refused:
            notes.append(self.merge.delete_refused)
        if self.quarantined:
            top = ", ".join(
                f"{reason} (x{n})" for reason, n in self.quarantine_reasons.most_common(3)
            )
            notes.append(f"{self.quarantined} records quarantined ({top})")
        if self.held:
            notes.append(f"{self.held} records held until their parent is synced")
        if self.merge.conflicts:
            notes.append(f"{len(self.merge.conflicts)} update conflicts (see sync_conflicts)")
        if self.verification and self.verification.gap_count:
            shown = ", ".join(self.verification.missing_keys[:10])
            notes.append(f"{self.verification.gap_count} keys missing from the warehouse: {shown}")
        if self.verification and self.verification.unexpected_count:
            shown = ", ".join(self.verification.unexpected_keys[:10])
            notes.append(
                f"{self.verification.unexpected_count} keys active in the warehouse that the "
                f"source no longer lists: {shown}"
            )
        return "; ".join(notes) or None
