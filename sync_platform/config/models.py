"""The shape of a source's YAML config, validated when the code location loads.

A new source or entity is a YAML file in this shape plus a client; the engine reads
only these models, never source-specific code.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FieldType = Literal["string", "integer", "float", "decimal", "boolean", "date", "datetime"]
Transform = Literal["strip", "upper", "lower", "collapse_spaces", "strip_currency"]
SyncMode = Literal["full_snapshot", "incremental"]

KEY_TYPES = ("string", "integer", "date")
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
DEFAULT_DATETIME_FORMATS = [
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
]
DEFAULT_DATE_FORMATS = ["%Y-%m-%d"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldChecks(_Strict):
    """Declarative validation rules, turned into pandera checks."""

    str_length: int | None = Field(default=None, ge=1, description="exact length")
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=1)
    ge: float | None = None
    le: float | None = None
    in_range: tuple[float, float] | None = None
    isin: list[Any] | None = None
    str_matches: str | None = None

    @field_validator("str_matches")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class FieldSpec(_Strict):
    """One warehouse column: where it comes from in the source record and how to clean it."""

    source: str = Field(alias="from", description="source field name; dots walk nested objects")
    type: FieldType = "string"
    required: bool = False
    precision: int = Field(default=18, ge=1, le=38)
    scale: int = Field(default=2, ge=0, le=18)
    formats: list[str] | None = None
    transforms: list[Transform] = ["strip"]
    null_values: list[str] = []
    value_map: dict[str, Any] = {}
    default: Any = None
    checks: FieldChecks = FieldChecks()
    description: str = Field(default="", description="what the column holds, shown in the UI")

    @model_validator(mode="after")
    def _scale_fits(self) -> FieldSpec:
        if self.scale > self.precision:
            raise ValueError(f"scale {self.scale} is larger than precision {self.precision}")
        return self

    def parse_formats(self) -> list[str]:
        if self.formats:
            return self.formats
        return DEFAULT_DATE_FORMATS if self.type == "date" else DEFAULT_DATETIME_FORMATS


ConflictStrategy = Literal["newest_wins", "source_wins", "warehouse_wins", "manual_review"]


Severity = Literal["high", "medium", "low"]


class ReconcileConfig(_Strict):
    """How a reconciliation judges the differences between the source and the warehouse
    (docs/reconciliation.md). A field not named in `field_severity` is cosmetic."""

    ignore_fields: list[str] = Field(
        default=[], description="columns not compared (e.g. a last-modified stamp)"
    )
    field_severity: dict[str, Severity] = Field(
        default={}, description="column → severity of a difference in it"
    )
    default_field_severity: Severity = "low"
    active_when: dict[str, list[Any]] = Field(
        default={},
        description="column → values that make a record active; empty: every record is",
    )
    missing_severity: Severity = Field(
        default="high", description="an active record missing from, or extra in, the warehouse"
    )
    inactive_severity: Severity = Field(
        default="low", description="an inactive record (e.g. a sold vehicle) missing or extra"
    )
    status_field: str | None = Field(
        default=None, description="a difference in this column is a status mismatch"
    )
    write_back: dict[str, dict[str, Any]] = Field(
        default={},
        description="column → {warehouse value: the source's own spelling}, for values the "
        "mapping changed (e.g. a status lower-cased) that a write to the source must restore",
    )
    modified_field: str | None = Field(
        default=None,
        description="column holding when the source last changed a record (default: the "
        "conflict_timestamp or cursor_field); a change newer than the latest sync is pending",
    )


class EntityConfig(_Strict):
    """One synced entity: its endpoint, key, columns and how changes are detected."""

    name: str = ""
    table: str
    endpoint: str
    key: list[str] = Field(min_length=1)
    sync_mode: SyncMode = "full_snapshot"
    cursor_field: str | None = None
    overlap_seconds: int = Field(default=0, ge=0)
    full_refresh_hours: int | None = Field(
        default=None,
        ge=1,
        description="incremental entity: read everything (a full refresh, checking the whole "
        "key set) when no full read succeeded in this many hours, so a key the change feed "
        "never sent is found; unset: only when asked",
    )
    depends_on: list[str] = []
    description: str = ""
    freshness_minutes: int | None = Field(
        default=None, ge=1, description="a successful sync is expected at least this often"
    )
    references: dict[str, str] = Field(
        default={},
        description="column → 'entity.column' it must match; rows whose parent is not in the "
        "warehouse yet are held and retried, never inserted dangling",
    )
    conflict_timestamp: str | None = Field(
        default=None,
        description="datetime column saying which version of a row is newer, for conflicts",
    )
    conflict_strategy: ConflictStrategy = Field(
        default="newest_wins",
        description="with a conflict_timestamp: who wins a record both the source and the "
        "warehouse changed since the last sync (source_wins, warehouse_wins, newest_wins, or "
        "manual_review: held at the warehouse's version until a person resolves it)",
    )
    skip_when_empty: list[str] = Field(
        default=[], description="rows with all of these columns empty are skipped, not loaded"
    )
    drift_check: bool = Field(
        default=True,
        description="a read whose records all lack a configured field is schema drift (off "
        "where each record stands alone, e.g. webhook bodies: a body without a field is "
        "quarantined)",
    )
    options: dict[str, Any] = Field(
        default={}, description="source-specific request settings the client reads"
    )
    partition_column: str | None = Field(
        default=None,
        description="date column of the key that daily partitions slice the entity by",
    )
    partition_start: date | None = Field(default=None, description="the first daily partition")
    reconcile: ReconcileConfig | None = Field(
        default=None, description="the entity takes part in its source's reconciliation"
    )
    fields: dict[str, FieldSpec] = Field(min_length=1)

    @field_validator("table")
    @classmethod
    def _table_is_identifier(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError(f"table name {value!r} must be lower_snake_case, at most 63 chars")
        return value

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        if value and not IDENTIFIER.match(value):
            raise ValueError(
                f"entity name {value!r} must be lower_snake_case (a-z, 0-9, _), at most 63 "
                "chars: it names the Dagster asset, its checks and its audit rows"
            )
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_relative(cls, value: str) -> str:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) or value.startswith("//"):
            raise ValueError(
                f"endpoint {value!r} must be relative to the source's base URL (which comes "
                "from the environment): an absolute URL would send the source's credentials "
                "to that host"
            )
        if any(ord(char) < 32 for char in value):
            raise ValueError(f"endpoint {value!r} holds a control character")
        return value

    @field_validator("fields")
    @classmethod
    def _columns_are_identifiers(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for column in value:
            if not IDENTIFIER.match(column):
                raise ValueError(f"column name {column!r} must be lower_snake_case")
        return value

    @model_validator(mode="after")
    def _key_and_cursor_are_columns(self) -> EntityConfig:
        for column in self.key:
            if column not in self.fields:
                raise ValueError(f"key column {column!r} is not one of the fields")
            if self.fields[column].type not in KEY_TYPES:
                raise ValueError(
                    f"key column {column!r} is {self.fields[column].type}; keys must be one of "
                    f"{', '.join(KEY_TYPES)} so they compare the same in every database"
                )
            if not self.fields[column].required:
                raise ValueError(f"key column {column!r} must be declared required: true")
        if self.partition_column is not None:
            if (
                self.partition_column not in self.key
                or self.fields[self.partition_column].type != "date"
            ):
                raise ValueError(
                    f"partition_column {self.partition_column!r} must be a date column of the key"
                )
            if self.partition_start is None:
                raise ValueError("a partitioned entity needs partition_start (its first day)")
        if self.conflict_timestamp is not None:
            spec = self.fields.get(self.conflict_timestamp)
            if spec is None or spec.type not in ("datetime", "date"):
                raise ValueError(
                    f"conflict_timestamp {self.conflict_timestamp!r} must be a date or "
                    "datetime field"
                )
        reconcile = self.reconcile
        named = (
            [
                *reconcile.ignore_fields,
                *reconcile.field_severity,
                *reconcile.active_when,
                *reconcile.write_back,
                *(c for c in (reconcile.status_field, reconcile.modified_field) if c),
            ]
            if reconcile
            else []
        )
        for column in [*self.references, *self.skip_when_empty, *named]:
            if column not in self.fields:
                raise ValueError(f"column {column!r} is not one of the fields")
        if self.sync_mode == "incremental":
            if not self.cursor_field:
                raise ValueError("an incremental entity needs cursor_field")
            if self.cursor_field not in self.fields:
                raise ValueError(f"cursor_field {self.cursor_field!r} is not one of the fields")
            if self.fields[self.cursor_field].type not in ("datetime", "date"):
                raise ValueError(f"cursor_field {self.cursor_field!r} must be a date or datetime")
        return self

    @property
    def columns(self) -> list[str]:
        return list(self.fields)

    @property
    def value_columns(self) -> list[str]:
        """Columns whose change makes a row 'changed' (all but the key)."""
        return [c for c in self.fields if c not in self.key]


class SourceSystem(_Strict):
    """The system a source reads, as the Dagster UI shows it upstream of the source's tables:
    one external asset per entity endpoint."""

    name: str = Field(min_length=1, description="what its owners call it")
    docs: str = Field(
        default="",
        pattern=r"^(https://\S+|docs/[\w./-]+\.md)?$",
        description="the API reference a reader follows from the UI: an https URL, or a page "
        "under docs/ for a system documented here",
    )
    kinds: list[str] = Field(default=[], description="Dagster kinds (icons) for its assets")


class SourceConfig(_Strict):
    source: str = Field(pattern=IDENTIFIER.pattern, description="lower_snake_case")
    description: str = ""
    system: SourceSystem | None = Field(
        default=None, description="the system read, shown upstream of the source's tables"
    )
    owners: list[str] = Field(
        default=[],
        description="who answers for the source's assets in the Dagster UI: 'team:<name>' or "
        "an email address",
    )
    field_defaults: dict[str, Any] = Field(
        default={},
        description="settings every field starts from (e.g. legacy null markers), "
        "overridden by the field's own",
    )
    entities: dict[str, EntityConfig] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _name_entities_and_apply_field_defaults(cls, data: Any) -> Any:
        if not (isinstance(data, dict) and isinstance(data.get("entities"), dict)):
            return data
        defaults = data.get("field_defaults") or {}
        entities = {}
        for name, spec in data["entities"].items():
            if isinstance(spec, dict):
                spec = {**spec, "name": name}
                if defaults and isinstance(spec.get("fields"), dict):
                    spec["fields"] = {
                        column: ({**defaults, **field} if isinstance(field, dict) else field)
                        for column, field in spec["fields"].items()
                    }
            entities[name] = spec
        return {**data, "entities": entities}

    @model_validator(mode="after")
    def _dependencies_exist(self) -> SourceConfig:
        for name, entity in self.entities.items():
            for dependency in entity.depends_on:
                if dependency not in self.entities:
                    raise ValueError(f"entity {name!r} depends on unknown entity {dependency!r}")
            for column, target in entity.references.items():
                parent, _, parent_column = target.partition(".")
                if parent not in entity.depends_on:
                    raise ValueError(
                        f"entity {name!r}: references.{column} points at {parent!r}, which is "
                        "not in its depends_on (the parent must sync first)"
                    )
                if parent_column not in self.entities[parent].fields:
                    raise ValueError(
                        f"entity {name!r}: references.{column}: {parent!r} has no column "
                        f"{parent_column!r}"
                    )
        return self

    def reference_targets(self, entity: str) -> dict[str, tuple[str, str]]:
        """column → (parent table, parent column) for an entity's references."""
        targets = {}
        for column, target in self.entities[entity].references.items():
            parent, _, parent_column = target.partition(".")
            targets[column] = (self.entities[parent].table, parent_column)
        return targets
