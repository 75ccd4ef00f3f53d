"""docs/tables.md: what each synced entity's warehouse table holds, generated from the shipped
source configs (`sync_platform/config/sources/*.yaml`), so the reference cannot drift from
the YAML that creates the tables.

    python -m sync_platform.warehouse.reference            # print it
    python -m sync_platform.warehouse.reference --write    # rewrite docs/tables.md

A test compares the committed file with `render()`; after changing a source's YAML, run the
second command and commit the result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlalchemy as sa
import yaml
from sqlalchemy.dialects import postgresql

from sync_platform.config.loader import PACKAGE_CONFIG_DIR
from sync_platform.config.models import EntityConfig, FieldChecks, FieldSpec, SourceConfig
from sync_platform.warehouse.entity_tables import (
    DELETED_AT,
    FIRST_SYNCED_AT,
    ROW_HASH,
    SYNC_RUN_ID,
    SYNCED_AT,
    VERSION,
    column_type,
    entity_table,
)

REPO_DOC = Path(__file__).resolve().parents[2] / "docs" / "tables.md"
COMMAND = "python -m sync_platform.warehouse.reference --write"
DEFAULT_TRANSFORMS = ["strip"]

# What the bookkeeping columns mean (their types come from `entity_table`).
BOOKKEEPING = {
    ROW_HASH: "hash of the row's values: a sync writes a row only when it changed",
    FIRST_SYNCED_AT: "when a sync first loaded the row",
    SYNCED_AT: "when a sync last wrote the row",
    DELETED_AT: "set when the row left the source (soft delete); empty while it is active",
    SYNC_RUN_ID: "the `sync_runs` row (the audit) of the sync that last wrote it",
    VERSION: "1 on insert, +1 on every write",
}


def shipped_sources(folder: Path = PACKAGE_CONFIG_DIR / "sources") -> list[SourceConfig]:
    """The source configs as shipped (no environment overlay), in file-name order."""
    return [
        SourceConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        for path in sorted(folder.glob("*.yaml"))
    ]


def _sql_type(sql_type: sa.types.TypeEngine) -> str:
    return sql_type.compile(dialect=postgresql.dialect())


def _code(values: list[str]) -> str:
    return ", ".join(f"`{value}`" for value in values)


def _sync_mode(entity: EntityConfig) -> str:
    if entity.partition_column:
        return (
            f"daily partitions by `{entity.partition_column}` from {entity.partition_start}; "
            "each run reads its days completely"
        )
    if entity.sync_mode == "full_snapshot":
        return "full snapshot: every sync reads everything the source has"
    text = f"incremental by `{entity.cursor_field}`"
    if entity.overlap_seconds:
        text += f" (each read goes back {entity.overlap_seconds} s before the cursor)"
    if entity.full_refresh_hours:
        text += (
            f"; the next sync reads everything when no full read succeeded in the last "
            f"{entity.full_refresh_hours} h"
        )
    return text


def _deletes(entity: EntityConfig) -> str:
    if entity.partition_column:
        return (
            "a row of a day the run read that the source no longer reports is soft-deleted "
            f"(`{DELETED_AT}` set)"
        )
    if entity.sync_mode == "full_snapshot":
        return (
            f"a key missing from a complete snapshot is soft-deleted (`{DELETED_AT}` set), "
            "at most `mass_delete_max_share` of the active rows per sync unless the run "
            "allows a mass delete; a key that comes back is active again"
        )
    if entity.full_refresh_hours:
        return (
            f"a delta never deletes; the full read (at least every {entity.full_refresh_hours} "
            f"h) soft-deletes the keys it no longer lists (`{DELETED_AT}` set), within "
            "`mass_delete_max_share`"
        )
    return (
        "a delta never deletes; keys leave only when a full read of the entity (a run "
        "tagged `sync_platform/full_refresh=true`: its source's full-sync job, where it has "
        f"one) no longer lists them (`{DELETED_AT}` set)"
    )


def _checks(checks: FieldChecks) -> list[str]:
    rules = []
    if checks.str_length is not None:
        rules.append(f"length {checks.str_length}")
    if checks.min_length is not None:
        rules.append(f"length ≥ {checks.min_length}")
    if checks.max_length is not None:
        rules.append(f"length ≤ {checks.max_length}")
    if checks.ge is not None:
        rules.append(f"≥ {checks.ge:g}")
    if checks.le is not None:
        rules.append(f"≤ {checks.le:g}")
    if checks.in_range is not None:
        rules.append(f"{checks.in_range[0]:g} to {checks.in_range[1]:g}")
    if checks.isin is not None:
        rules.append("one of " + ", ".join(str(value) for value in checks.isin))
    if checks.str_matches is not None:
        rules.append(f"matches `{checks.str_matches}`")
    return rules


def _column_notes(spec: FieldSpec) -> str:
    notes = [spec.description] if spec.description else []
    if spec.transforms != DEFAULT_TRANSFORMS:
        notes.append("cleaned: " + (", ".join(spec.transforms) or "as sent"))
    if spec.value_map:
        notes.append("mapped: " + ", ".join(f"{k} → {v}" for k, v in spec.value_map.items()))
    if spec.default is not None:
        notes.append(f"default {spec.default}")
    rules = _checks(spec.checks)
    if rules:
        notes.append("checked: " + "; ".join(rules))
    return "; ".join(notes).replace("|", "\\|")


def _entity(source: SourceConfig, entity: EntityConfig) -> list[str]:
    lines = [f"### `{entity.table}`", ""]
    if entity.description:
        lines += [entity.description, ""]
    facts = [
        ("Dagster asset", f"`{entity.name}` (group `{source.source}`)"),
        ("primary key", _code(entity.key)),
        ("sync", _sync_mode(entity)),
        ("deletes", _deletes(entity)),
    ]
    if entity.freshness_minutes:
        facts.append(
            ("freshness", f"a successful sync at least every {entity.freshness_minutes} min")
        )
    if entity.depends_on:
        facts.append(("syncs after", _code(entity.depends_on)))
    for column, (table, parent_column) in source.reference_targets(entity.name).items():
        facts.append(
            (
                f"`{column}` references",
                f"`{table}.{parent_column}`: a row whose parent is not loaded yet waits in "
                "`sync_held_records`",
            )
        )
    if entity.conflict_timestamp:
        facts.append(
            (
                "conflicts",
                f"`{entity.conflict_strategy}`, judged by `{entity.conflict_timestamp}` "
                "(`sync_conflicts`)",
            )
        )
    if entity.skip_when_empty:
        facts.append(("skipped", f"source rows with {_code(entity.skip_when_empty)} all empty"))
    if entity.reconcile:
        facts.append(("reconciled", "yes (docs/reconciliation.md)"))
    lines += ["| | |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in facts]
    lines += [
        "",
        "| column | type | null | from the source | notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, spec in entity.fields.items():
        sql_type = _sql_type(column_type(spec))
        null = "key" if name in entity.key else ("no" if spec.required else "yes")
        lines.append(
            f"| `{name}` | {sql_type} | {null} | `{spec.source}` | {_column_notes(spec)} |"
        )
    return [*lines, ""]


def render(sources: list[SourceConfig] | None = None) -> str:
    sources = shipped_sources() if sources is None else sources
    bookkeeping = entity_table(next(iter(sources[0].entities.values())))
    lines = [
        "# Tables",
        "",
        f"<!-- Generated by `{COMMAND}` from sync_platform/config/sources/*.yaml. "
        "Do not edit by hand: a test compares this file with the generated text. -->",
        "",
        "What each synced entity's warehouse table holds, source by source, as the shipped "
        "configuration defines it (an environment overlay can change it: docs/deploy.md). "
        "`sync-platform db upgrade` creates the tables; types are PostgreSQL's (the embedded "
        "SQLite warehouse stores the same columns with its own types). *null* says whether a "
        "column may be empty: *key* columns are the primary key, *no* columns are required "
        "(a record without one is quarantined, not loaded). *From the source* is the field "
        "the value is read from (dots walk nested objects; `_inbox.*` is the webhook inbox "
        "row). Unless a column says otherwise its text is stripped of surrounding spaces.",
        "",
        "## Every entity table",
        "",
        "Besides its own columns, every entity table has these, written by the sync:",
        "",
        "| column | type | meaning |",
        "| --- | --- | --- |",
        *(
            f"| `{name}` | {_sql_type(bookkeeping.c[name].type)} | {meaning} |"
            for name, meaning in BOOKKEEPING.items()
        ),
        "",
        f"Active rows are those with `{DELETED_AT}` empty; nothing is deleted for real. A "
        "record the sync refuses (a required value missing, a value that does not cast, a "
        "broken rule) is not loaded: it waits in `sync_quarantine` with its reasons "
        "(docs/operations.md).",
        "",
    ]
    for source in sources:
        entities = list(source.entities.values())
        lines += [f"## {source.source}", ""]
        intro = source.description
        if source.owners:
            intro += f" Owners: {', '.join(source.owners)}."
        intro += f" Config: `sync_platform/config/sources/{source.source}.yaml`."
        lines += [intro.strip(), ""]
        lines += [f"- [`{entity.table}`](#{entity.table})" for entity in entities]
        lines.append("")
        for entity in entities:
            lines += _entity(source, entity)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--write", action="store_true", help=f"write {REPO_DOC} instead of printing it"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        REPO_DOC.write_text(text, encoding="utf-8")
        print(f"wrote {REPO_DOC}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
