"""Resolution actions on open discrepancies, one record or many, each audited per record
(who, when, which record, the warehouse row before and after).

- take source: the record as the source has it, through the normal engine (a targeted
  resync); a record only the warehouse has is soft-deleted, after the source is asked again.
- keep local: the warehouse's version stands; where the source accepts writes it is queued
  and written back, and the discrepancy closes when the write is applied.
- ignore: quiet until an expiry (or until the difference changes), with a reason.
- merge: per field, the source's or the warehouse's value; previewed without writing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import sqlalchemy as sa

from sync_platform.config.models import EntityConfig, SourceConfig
from sync_platform.engine import review
from sync_platform.engine.audit import utcnow
from sync_platform.engine.hashing import row_hash_expr
from sync_platform.engine.mapping import cast_text_columns, jsonable, mapped_keys
from sync_platform.engine.merge import KEY, typed_keys
from sync_platform.engine.pipeline import run_entity_sync
from sync_platform.engine.ports import SyncRequest
from sync_platform.errors import ConfigurationError
from sync_platform.reconcile import store
from sync_platform.reconcile.compare import compared_columns, modified_column
from sync_platform.reconcile.run import OpenSource
from sync_platform.warehouse import bulk
from sync_platform.warehouse.entity_tables import (
    DELETED_AT,
    ROW_HASH,
    SYNCED_AT,
    VERSION,
    entity_table,
)
from sync_platform.warehouse.platform_tables import reconciliation_pushes

ACTIONS = ("take_source", "keep_local", "ignore", "merge")
MAX_ERROR_CHARS = 500


@dataclass
class Outcome:
    action: str
    done: list[str] = field(default_factory=list)  # record keys acted on
    refused: dict[str, str] = field(default_factory=dict)  # record key → why not
    preview: list[dict[str, Any]] = field(default_factory=list)  # merge preview: key, before, after


def _wire(value: Any) -> Any:
    """A typed value as the source's JSON carries it."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def source_record(
    row: dict[str, Any], entity: EntityConfig, only: list[str] | None = None
) -> dict[str, Any]:
    """A typed warehouse row (or `only` these columns of it) in the source's field names and
    spellings (`write_back`), nested paths rebuilt; never the last-modified stamp, which the
    source sets when it accepts the write."""
    record: dict[str, Any] = {}
    stamp = modified_column(entity)
    spelled = entity.reconcile.write_back if entity.reconcile else {}
    for column, spec in entity.fields.items():
        if column == stamp or (only is not None and column not in only):
            continue
        value = row.get(column)
        value = spelled.get(column, {}).get(value, value)
        target = record
        *parents, leaf = spec.source.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = _wire(value)
    return record


def typed_row(values: dict[str, Any], entity: EntityConfig) -> dict[str, Any]:
    """A stored JSON record (text, numbers) typed by the entity's rules."""
    text = pl.DataFrame(
        {c: [None if values.get(c) is None else str(values[c])] for c in entity.columns},
        schema={c: pl.String for c in entity.columns},
    )
    return cast_text_columns(text, entity.fields).row(0, named=True)


def _key_filter(table: sa.Table, entity: EntityConfig, record_key: str):
    key = typed_keys(pl.DataFrame({KEY: [record_key]}), entity).row(0, named=True)
    return [table.c[column] == key[column] for column in entity.key]


def warehouse_row(
    connection: sa.Connection, entity: EntityConfig, record_key: str
) -> dict[str, Any] | None:
    """The row as it stands, deleted or not, typed (None: the warehouse never had it)."""
    table = entity_table(entity)
    columns = [*entity.columns, DELETED_AT]
    query = sa.select(*(sa.cast(table.c[c], sa.Text).label(c) for c in columns)).where(
        *_key_filter(table, entity, record_key)
    )
    text = bulk.select_frame(connection, query, {c: pl.String for c in columns})
    if text.is_empty():
        return None
    typed = cast_text_columns(text.drop(DELETED_AT), entity.fields).row(0, named=True)
    return {c: jsonable(v) for c, v in typed.items()} | {
        "_deleted": text[0, DELETED_AT] is not None
    }


class Resolver:
    """Applies actions to the discrepancies a `store.Selection` picks, as `actor`."""

    def __init__(
        self,
        engine: sa.Engine,
        source: SourceConfig,
        open_source: OpenSource,
        *,
        actor: str,
        dagster_run_id: str | None = None,
    ):
        self.engine, self.source, self.open_source = engine, source, open_source
        self.actor, self.dagster_run_id = actor, dagster_run_id

    def _selected(self, selection: store.Selection) -> dict[str, list[dict[str, Any]]]:
        if not selection.narrowed:
            raise ConfigurationError(
                "no discrepancy chosen",
                hint="name them by --id, --key, --kind, --severity or --field (a bulk action "
                "on everything must say so, e.g. --severity high --severity medium --severity low)",
            )
        selection.source = self.source.source
        with self.engine.connect() as connection:
            rows = store.select_discrepancies(connection, selection)
        by_entity: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_entity.setdefault(row["entity"], []).append(row)
        return by_entity

    def _settle(self) -> None:
        """The source's reconciliation alert closes once nothing it reported is open."""
        with self.engine.begin() as connection:
            store.close_alert_when_clear(connection, self.source.source)

    def _entity(self, name: str) -> EntityConfig:
        return self.source.entities[name]

    def _audit(self, connection, action, row, before, after, detail=None) -> int:
        return store.write_action(
            connection,
            actor=self.actor,
            action=action,
            discrepancy=row,
            before=before,
            after=after,
            detail=detail,
            dagster_run_id=self.dagster_run_id,
        )

    # --- ignore -----------------------------------------------------------------------------
    def ignore(self, selection: store.Selection, *, reason: str, until: datetime) -> Outcome:
        if not reason.strip():
            raise ConfigurationError("ignore needs a reason", hint="give --reason '…'")
        if until <= utcnow():
            raise ConfigurationError(
                f"the expiry {until:%Y-%m-%d %H:%M} UTC is not in the future",
                hint="give --until a later date (or --days N)",
            )
        outcome = Outcome("ignore")
        chosen = self._selected(selection)
        with self.engine.begin() as connection:
            for rows in chosen.values():
                for row in rows:
                    state = warehouse_row(
                        connection, self._entity(row["entity"]), row["record_key"]
                    )
                    store.close(
                        connection,
                        row["id"],
                        status="ignored",
                        resolution="ignore",
                        note=reason,
                        ignored_until=until,
                    )
                    detail = f"ignored until {until.isoformat()}: {reason}"
                    self._audit(connection, "ignore", row, state, state, detail)
                    outcome.done.append(row["record_key"])
        self._settle()
        return outcome

    # --- take source ------------------------------------------------------------------------
    def take_source(self, selection: store.Selection) -> Outcome:
        outcome = Outcome("take_source")
        for name, rows in self._selected(selection).items():
            entity = self._entity(name)
            table = entity_table(entity)
            with self.open_source(entity) as entity_source:
                extra = [r for r in rows if r["kind"] == "extra"]
                still_there = self._source_keys(entity, entity_source) if extra else set()
                vanished = [r for r in extra if r["record_key"] not in still_there]
                resync = [r for r in rows if r not in vanished]
                with self.engine.connect() as connection:
                    before = {
                        r["record_key"]: warehouse_row(connection, entity, r["record_key"])
                        for r in rows
                    }
                if resync:
                    self._resync(entity, table, [r["record_key"] for r in resync], entity_source)
            with self.engine.begin() as connection:
                now = utcnow()
                for row in vanished:
                    connection.execute(
                        sa.update(table)
                        .where(*_key_filter(table, entity, row["record_key"]))
                        .values({DELETED_AT: now, SYNCED_AT: now, VERSION: table.c[VERSION] + 1})
                    )
                for row in rows:
                    key = row["record_key"]
                    after = warehouse_row(connection, entity, key)
                    gone_too = row["kind"] != "extra" and (after is None or after["_deleted"])
                    if row in vanished:
                        detail = "soft-deleted: the source does not have it"
                    elif gone_too:  # both sides agree now: neither has it
                        detail = "the source no longer has it either: nothing to take"
                    else:
                        detail = "resynced from the source"
                    self._audit(connection, "take_source", row, before[key], after, detail)
                    store.close(connection, row["id"], status="resolved", resolution="take_source")
                    outcome.done.append(key)
                review.close_alert_when_reviewed(connection, self.source.source, name)
        self._settle()
        return outcome

    def _source_keys(self, entity: EntityConfig, entity_source) -> set[str]:
        pages = (
            entity_source.key_listing() if entity_source.key_listing else entity_source.pages(None)
        )
        return set(mapped_keys(pages, entity).to_list())

    def _resync(self, entity, table, keys: list[str], entity_source) -> None:
        """A targeted sync of `keys` that rewrites them even where the warehouse was edited
        by hand (its stored hash, still the source's, would call them unchanged)."""
        with self.engine.begin() as connection:
            for key in keys:
                connection.execute(
                    sa.update(table).where(*_key_filter(table, entity, key)).values({ROW_HASH: 0})
                )
        run_entity_sync(
            self.engine,
            SyncRequest(
                self.source.source,
                entity,
                trigger="resync",
                dagster_run_id=self.dagster_run_id,
                only_keys=keys,
                references=self.source.reference_targets(entity.name),
                force_source=True,
            ),
            entity_source,
        )

    # --- keep local -------------------------------------------------------------------------
    def keep_local(self, selection: store.Selection) -> Outcome:
        outcome = Outcome("keep_local")
        for name, rows in self._selected(selection).items():
            entity = self._entity(name)
            with self.open_source(entity) as entity_source:
                for row in rows:
                    self._keep_one(entity, entity_source, row, outcome)
        self._settle()
        return outcome

    def _keep_one(self, entity, entity_source, row, outcome: Outcome) -> None:
        key = row["record_key"]
        if row["kind"] == "missing":
            outcome.refused[key] = "the warehouse has no version to keep: take source, or ignore it"
            return
        with self.engine.begin() as connection:
            state = warehouse_row(connection, entity, key)
            if entity_source.push is None:
                if row["kind"] == review.CONFLICT:  # settled until the source changes again
                    _store_hash(connection, entity, key, typed_row(row["source_values"], entity))
                detail = "kept; the source takes no writes, so its next change replaces it"
                self._audit(connection, "keep_local", row, state, state, detail)
                store.close(connection, row["id"], status="resolved", resolution="keep_local")
                review.close_alert_when_reviewed(connection, row["source"], row["entity"])
                outcome.done.append(key)
                return
            replace = row["kind"] == "extra"  # the source has no such record: create it
            only = None if replace else row["fields"]
            record = source_record(typed_row(state, entity), entity, only)
            action_id = self._audit(connection, "keep_local", row, state, state, "push queued")
            push_id = _queue_push(connection, row, record, action_id)
        error = self._apply_push(push_id, key, record, replace, entity_source)
        with self.engine.begin() as connection:
            if error is None:
                # The warehouse's version is now the agreed one: the source's next read of it
                # (with its new stamp) is a plain change, not a record both sides changed.
                _store_hash(connection, entity, key, typed_row(state, entity))
                review.close_alert_when_reviewed(connection, row["source"], row["entity"])
                store.close(
                    connection,
                    row["id"],
                    status="resolved",
                    resolution="keep_local",
                    note="written back to the source",
                )
                outcome.done.append(key)
            else:
                outcome.refused[key] = f"the write to the source failed: {error}"

    def _apply_push(
        self, push_id: int, key: str, record: dict, replace: bool, entity_source
    ) -> str | None:
        try:
            entity_source.push(key, record, replace)
        except Exception as exc:  # recorded on the queue row, retried by a later resolution
            error = str(exc)[:MAX_ERROR_CHARS]
            values = {"status": "failed", "error": error}
        else:
            error, values = None, {"status": "applied", "applied_at": utcnow(), "error": None}
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(reconciliation_pushes)
                .where(reconciliation_pushes.c.id == push_id)
                .values(attempts=reconciliation_pushes.c.attempts + 1, **values)
            )
        return error

    # --- merge ------------------------------------------------------------------------------
    def merge(
        self, selection: store.Selection, choices: dict[str, str], *, preview: bool
    ) -> Outcome:
        outcome = Outcome("merge")
        for name, rows in self._selected(selection).items():
            entity = self._entity(name)
            unknown = set(choices) - set(compared_columns(entity))
            wrong = {v for v in choices.values()} - {"source", "local"}
            if unknown or wrong:
                raise ConfigurationError(
                    f"merge choices {choices} do not fit {entity.name}",
                    hint=f"choose per field 'source' or 'local'; fields: "
                    f"{', '.join(compared_columns(entity))}",
                )
            with self.open_source(entity) as entity_source:
                for row in rows:
                    if row["kind"] not in ("field_diff", "status_mismatch"):
                        outcome.refused[row["record_key"]] = (
                            f"a {row['kind']} record has one side only: take source or keep local"
                        )
                        continue
                    self._merge_one(entity, entity_source, row, choices, preview, outcome)
        self._settle()
        return outcome

    def _merge_one(self, entity, entity_source, row, choices, preview, outcome) -> None:
        key = row["record_key"]
        table = entity_table(entity)
        with self.engine.begin() as connection:
            before = warehouse_row(connection, entity, key)
            merged = {
                c: (row["source_values"][c] if choices.get(c) == "source" else before[c])
                for c in entity.columns
            }
            changed = [c for c in entity.columns if merged[c] != before[c]]
            if preview:
                outcome.preview.append(
                    {"record_key": key, "before": before, "after": merged, "changes": changed}
                )
                return
            typed = typed_row(merged, entity)
            pushed = entity_source.push is not None
            # Without a write-back, the stored hash stays the source's version: the next sync
            # leaves the merged row alone until the source changes the record.
            hashed = typed if pushed else typed_row(row["source_values"], entity)
            stored_hash = _hash(entity, hashed)
            connection.execute(
                sa.update(table)
                .where(*_key_filter(table, entity, key))
                .values(
                    {c: typed[c] for c in entity.value_columns}
                    | {ROW_HASH: stored_hash, SYNCED_AT: utcnow(), VERSION: table.c[VERSION] + 1}
                )
            )
            review.close_alert_when_reviewed(connection, row["source"], row["entity"])
            after = warehouse_row(connection, entity, key)
            detail = f"merged: {', '.join(f'{f}={v}' for f, v in sorted(choices.items()))}"
            action_id = self._audit(connection, "merge", row, before, after, detail)
            push_id = None
            ours = [c for c in row["fields"] if choices.get(c) != "source"]
            if pushed and ours:  # the fields where the source must take the merged value
                record = source_record(typed, entity, ours)
                push_id = _queue_push(connection, row, record, action_id)
        error = self._apply_push(push_id, key, record, False, entity_source) if push_id else None
        with self.engine.begin() as connection:
            note = "merged" + (f"; the write to the source failed: {error}" if error else "")
            store.close(connection, row["id"], status="resolved", resolution="merge", note=note)
        outcome.done.append(key)
        if error:
            outcome.refused[key] = (
                f"merged in the warehouse; the write to the source failed: {error}"
            )


def _hash(entity: EntityConfig, typed: dict[str, Any]) -> int:
    """The row hash a sync stores for these typed values."""
    return pl.DataFrame([typed]).select(row_hash_expr(entity.value_columns)).item()


def _store_hash(connection, entity: EntityConfig, key: str, typed: dict[str, Any]) -> None:
    table = entity_table(entity)
    connection.execute(
        sa.update(table)
        .where(*_key_filter(table, entity, key))
        .values({ROW_HASH: _hash(entity, typed), VERSION: table.c[VERSION] + 1})
    )


def _queue_push(connection, row: dict[str, Any], record: dict[str, Any], action_id: int) -> int:
    return connection.execute(
        sa.insert(reconciliation_pushes)
        .values(
            source=row["source"],
            entity=row["entity"],
            record_key=row["record_key"],
            record=record,
            action_id=action_id,
            queued_at=utcnow(),
            status="pending",
        )
        .returning(reconciliation_pushes.c.id)
    ).scalar_one()
