"""`sync-platform reconcile`: list, show, resolve and export the differences a reconciliation
found between a source and the warehouse, and the runs that found them.

Every filter is checked against the source's config, so a misspelt kind or field is an
error rather than an empty answer; an action on more than `BULK_CONFIRM` records needs
--yes; who acted is recorded in the audit trail with every record.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sync_platform import settings
from sync_platform.cli.shared import migrated_warehouse_engine, reported
from sync_platform.errors import ConfigurationError

reconcile_app = typer.Typer(
    help="Reconciliation: list, show, resolve and export the differences between a source and "
    "the warehouse (docs/reconciliation.md).",
    no_args_is_help=True,
)

BULK_CONFIRM = 20  # a resolution of more records than this needs --yes
IGNORE_DAYS = 30
STATUSES = ("open", "resolved", "ignored", "gone")

SourceOption = Annotated[str, typer.Option("--source", help="the source reconciled")]
EntityOption = Annotated[str | None, typer.Option("--entity", help="one entity, e.g. dealer_stock")]
KindOption = Annotated[
    list[str] | None,
    typer.Option("--kind", help="missing | extra | field_diff | status_mismatch (repeatable)"),
]
SeverityOption = Annotated[
    list[str] | None, typer.Option("--severity", help="high | medium | low (repeatable)")
]
FieldOption = Annotated[
    list[str] | None, typer.Option("--field", help="a column that differs (repeatable)")
]
KeyOption = Annotated[list[str] | None, typer.Option("--key", help="a record key (repeatable)")]
StatusOption = Annotated[
    list[str] | None,
    typer.Option("--status", help="open (default) | resolved | ignored | gone (repeatable)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


class ResolveAction(StrEnum):
    TAKE_SOURCE = "take-source"
    KEEP_LOCAL = "keep-local"
    IGNORE = "ignore"
    MERGE = "merge"


def _allowed(option: str, given: list[str], allowed: Iterable[str]) -> list[str]:
    wrong = [value for value in given if value not in allowed]
    if wrong:
        raise ConfigurationError(
            f"{option} {', '.join(wrong)} is not known", hint=f"one of: {', '.join(allowed)}"
        )
    return given


def _selection(
    source: str,
    entity: str | None,
    kinds: list[str] | None,
    severities: list[str] | None,
    fields: list[str] | None,
    keys: list[str] | None,
    statuses: list[str] | None,
    ids: list[int] | None = None,
):
    """The filters checked against the source's config (a typo is an error, not an empty
    answer) as a `store.Selection`, with the source's config."""
    from sync_platform.config import cached_source_config
    from sync_platform.engine.severity import KINDS, RANK
    from sync_platform.reconcile.compare import compared_columns
    from sync_platform.reconcile.run import reconciled_entities
    from sync_platform.reconcile.store import Selection

    config = cached_source_config(source)
    reconciled = {e.name: e for e in reconciled_entities(config)}
    if entity is not None and entity not in reconciled:
        raise ConfigurationError(
            f"{source} has no reconciled entity {entity!r}",
            hint=f"one of: {', '.join(reconciled) or '(none has a reconcile: block)'}",
        )
    columns = {
        column
        for name, spec in reconciled.items()
        if entity in (None, name)
        for column in compared_columns(spec)
    }
    selection = Selection(
        source=source,
        entity=entity,
        kinds=_allowed("--kind", kinds or [], KINDS),
        severities=_allowed("--severity", severities or [], RANK),
        fields=_allowed("--field", fields or [], sorted(columns)),
        keys=keys or [],
        ids=ids or [],
        statuses=_allowed("--status", statuses or ["open"], STATUSES),
    )
    return selection, config


def _when(moment) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _columns(lines: list[list[str]]) -> list[str]:
    """Rows of cells aligned in columns (the last one left ragged)."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]])
        for line in lines
    ]


def _shown(value) -> str:
    from sync_platform.reconcile.report import ABSENT

    return "(absent)" if value is ABSENT else "null" if value is None else str(value)


@reconcile_app.command("list")
def reconcile_list(
    source: SourceOption = "dealer_feed",
    entity: EntityOption = None,
    kind: KindOption = None,
    severity: SeverityOption = None,
    field: FieldOption = None,
    key: KeyOption = None,
    status: StatusOption = None,
    limit: Annotated[int, typer.Option(min=1, help="show at most this many")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Discrepancies (open ones unless --status says otherwise), by entity and key."""
    from sync_platform.reconcile.report import as_json as rows_as_json
    from sync_platform.reconcile.store import select_discrepancies

    with reported():
        selection, _ = _selection(source, entity, kind, severity, field, key, status)
        with migrated_warehouse_engine().connect() as connection:
            rows = select_discrepancies(connection, selection)
    if as_json:
        typer.echo(rows_as_json(rows[:limit]))
        return
    if not rows:
        typer.echo(f"no {' or '.join(selection.statuses)} discrepancy matches")
        return
    lines = [["id", "entity", "key", "kind", "severity", "fields", "first seen"]]
    lines += [
        [
            str(row["id"]),
            row["entity"],
            row["record_key"],
            row["kind"],
            row["severity"],
            ",".join(row["fields"] or []) or "-",
            _when(row["first_seen_at"]),
        ]
        for row in rows[:limit]
    ]
    for line in _columns(lines):
        typer.echo(line)
    if len(rows) > limit:
        typer.echo(f"… and {len(rows) - limit} more (raise --limit, or `reconcile export`)")


def _one_discrepancy(connection, selection, named: str) -> dict:
    from sync_platform.reconcile.store import select_discrepancies

    rows = select_discrepancies(connection, selection)
    if not rows:
        raise ConfigurationError(
            f"no discrepancy {named}",
            hint="`sync-platform reconcile list --status open --status ignored --status "
            "resolved --status gone` lists them all",
        )
    if len(rows) > 1:
        entities = ", ".join(row["entity"] for row in rows)
        raise ConfigurationError(
            f"{len(rows)} discrepancies {named}", hint=f"give --entity ({entities})"
        )
    return rows[0]


@reconcile_app.command("show")
def reconcile_show(
    discrepancy_id: Annotated[int | None, typer.Argument(help="the discrepancy's id")] = None,
    key: Annotated[str | None, typer.Option("--key", help="or: a record key")] = None,
    entity: EntityOption = None,
    source: SourceOption = "dealer_feed",
) -> None:
    """One discrepancy field by field, warehouse beside source, `*` where they differ.

    With each side's last-modified stamp (where the entity has one) and the audit trail.
    """
    from sync_platform.reconcile.compare import modified_column
    from sync_platform.reconcile.report import side_by_side
    from sync_platform.reconcile.store import actions_for

    with reported():
        if (discrepancy_id is None) == (key is None):
            raise ConfigurationError(
                "name one discrepancy", hint="give its ID, or --key K (with --entity E)"
            )
        keys = [key] if key else []
        selection, config = _selection(source, entity, None, None, None, keys, list(STATUSES))
        if discrepancy_id is not None:
            selection.ids = [discrepancy_id]
        named = f"#{discrepancy_id}" if key is None else f"with key {key}"
        with migrated_warehouse_engine().connect() as connection:
            row = _one_discrepancy(connection, selection, f"{named} in {source}")
            actions = actions_for(connection, row["id"])
    spec = config.entities.get(row["entity"])
    typer.echo(
        f"#{row['id']} {row['source']}.{row['entity']} {row['record_key']}: {row['kind']}, "
        f"{row['severity']}, {row['status']}"
    )
    typer.echo(f"first seen {_when(row['first_seen_at'])}, last seen {_when(row['last_seen_at'])}")
    if row["status"] == "ignored":
        typer.echo(f"ignored until {_when(row['ignored_until'])}: {row['note']}")
    elif row["resolution"]:
        note = f": {row['note']}" if row["note"] else ""
        typer.echo(f"closed by {row['resolution']} at {_when(row['resolved_at'])}{note}")
    stamp = modified_column(spec) if spec else None
    if stamp:
        sides = {"warehouse": row["warehouse_values"], "source": row["source_values"]}
        modified = (
            f"{side} {'(absent)' if values is None else _shown(values.get(stamp))}"
            for side, values in sides.items()
        )
        typer.echo(f"last modified ({stamp}): {', '.join(modified)}")
    lines = [["", "field", "warehouse", "source"]]
    lines += [
        ["*" if differs else "", name, _shown(warehouse), _shown(source_value)]
        for name, warehouse, source_value, differs in side_by_side(
            row, spec.columns if spec else None
        )
    ]
    typer.echo("")
    for line in _columns(lines):
        typer.echo(line.rstrip())
    typer.echo("\naudit trail:" if actions else "\naudit trail: no action taken yet")
    for action in actions:
        detail = f"  {action['detail']}" if action["detail"] else ""
        typer.echo(f"  {_when(action['at'])}  {action['actor']}  {action['action']}{detail}")


def _actor(by: str | None) -> str:
    """Who the audit records: --by, else SYNC_PLATFORM_USER, else the logged-in user."""
    import getpass

    if by and by.strip():
        return by.strip()
    if os.environ.get(settings.OPERATOR_ENV, "").strip():
        return os.environ[settings.OPERATOR_ENV].strip()
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise ConfigurationError(
            "cannot tell who is acting", hint=f"give --by NAME or set {settings.OPERATOR_ENV}"
        ) from None


def _expiry(days: int | None, until: str | None) -> datetime:
    """When an ignore ends: --until (a date or ISO time, UTC unless it says), else --days."""
    if days is not None and until is not None:
        raise ConfigurationError("give --days or --until, not both", hint="drop one of them")
    if until is None:
        return datetime.now(UTC) + timedelta(days=IGNORE_DAYS if days is None else days)
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        raise ConfigurationError(
            f"--until {until!r} is not a date", hint="write it as 2025-12-31 or 2025-12-31T18:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _choices(choose: list[str]) -> dict[str, str]:
    """`--choose field=source|local` as {field: side}."""
    chosen = {}
    for text in choose:
        name, _, side = text.partition("=")
        if not name.strip() or side.strip() not in ("source", "local"):
            raise ConfigurationError(
                f"--choose {text!r} is not FIELD=source or FIELD=local",
                hint="e.g. --choose price=source --choose colour=local",
            )
        chosen[name.strip()] = side.strip()
    return chosen


def _source_resource(source: str):
    """The source's resource (the one registered under the source's name in
    `defs/<source>/resources.py`), built from the environment as Dagster would."""
    import importlib

    from sync_platform.orchestration.configuration import not_configured_reason, unset
    from sync_platform.orchestration.resources import EntitySourceResource

    try:
        module = importlib.import_module(f"sync_platform.defs.{source}.resources")
    except ModuleNotFoundError:
        module = None
    found = (
        [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, EntitySourceResource)
            and getattr(value, "key", None) == source
        ]
        if module
        else []
    )
    if not found:
        raise ConfigurationError(
            f"no resource reads source {source!r}",
            hint=f"sync_platform/defs/{source}/resources.py should define one with key {source!r}",
        )
    missing = unset(found[0].required_env)
    if missing:
        raise ConfigurationError(
            not_configured_reason(source, missing), hint=f"set {', '.join(missing)}"
        )
    return found[0].from_env().process_config_and_initialize()


def _source_opener(source: str):
    """Opens an entity of the source, the resource built on first use: an ignore reads
    nothing from the source, so it needs none of the source's variables."""
    built = []

    def open_source(entity):
        if not built:
            built.append(_source_resource(source))
        return built[0].entity_source(entity, None)

    return open_source


def _print_outcome(outcome, action: ResolveAction, actor: str, previewed: bool) -> None:
    if previewed:
        typer.echo(
            f"merge preview of {len(outcome.preview)} record(s); nothing written (--apply merges)"
        )
        for item in outcome.preview:
            changes = "; ".join(
                f"{column} {_shown(item['before'][column])} → {_shown(item['after'][column])}"
                for column in item["changes"]
            )
            typer.echo(f"  {item['record_key']}: {changes or 'no change in the warehouse'}")
    else:
        typer.echo(
            f"{action.value} by {actor}: {len(outcome.done)} done, {len(outcome.refused)} refused"
        )
        if outcome.done:
            typer.echo(f"  done: {', '.join(outcome.done)}")
    for key, why in outcome.refused.items():
        typer.echo(f"  refused {key}: {why}")


@reconcile_app.command("resolve")
def reconcile_resolve(
    action: Annotated[
        ResolveAction, typer.Argument(help="take-source | keep-local | ignore | merge")
    ],
    source: SourceOption = "dealer_feed",
    entity: EntityOption = None,
    kind: KindOption = None,
    severity: SeverityOption = None,
    field: FieldOption = None,
    key: KeyOption = None,
    status: StatusOption = None,
    ids: Annotated[
        list[int] | None, typer.Option("--id", help="a discrepancy id (repeatable)")
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="ignore: why (kept in the audit trail)")
    ] = None,
    days: Annotated[
        int | None, typer.Option(min=1, help=f"ignore: for this many days (default {IGNORE_DAYS})")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="ignore: until this date or ISO time (UTC)")
    ] = None,
    choose: Annotated[
        list[str] | None,
        typer.Option(
            "--choose",
            help="merge: FIELD=source or FIELD=local (repeatable; unnamed fields stay local)",
        ),
    ] = None,
    preview: Annotated[
        bool, typer.Option("--preview/--apply", help="merge: show what would change, or do it")
    ] = True,
    by: Annotated[
        str | None,
        typer.Option("--by", help=f"who acts (default ${settings.OPERATOR_ENV}, else the OS user)"),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help=f"act on more than {BULK_CONFIRM} records")
    ] = False,
) -> None:
    """Resolve the discrepancies the filters pick, each audited per record.

    take-source: the source's version (a resync; a record only the warehouse has is soft-deleted).

    keep-local: the warehouse's version, written back to the source.

    ignore: quiet until --until or --days (default 30), with a --reason.

    merge: per field (--choose), previewed unless --apply.

    Exit code 1 when a record is refused or nothing matches, 2 on an error.
    """
    from sync_platform.reconcile.resolve import Resolver
    from sync_platform.reconcile.store import select_discrepancies

    with reported():
        if action is not ResolveAction.IGNORE and (reason or days or until):
            raise ConfigurationError(
                f"--reason, --days and --until are for ignore, not {action.value}", hint="drop them"
            )
        if action is not ResolveAction.MERGE and choose:
            raise ConfigurationError(f"--choose is for merge, not {action.value}", hint="drop it")
        if action is ResolveAction.MERGE and not choose:
            raise ConfigurationError(
                "merge needs a choice per field",
                hint="give --choose FIELD=source (or =local) for each field to take",
            )
        expiry = _expiry(days, until) if action is ResolveAction.IGNORE else None
        choices = _choices(choose or [])
        selection, config = _selection(source, entity, kind, severity, field, key, status, ids)
        actor = _actor(by)
        engine = migrated_warehouse_engine()
        writes = not (action is ResolveAction.MERGE and preview)
        if selection.narrowed:
            with engine.connect() as connection:
                matched = len(select_discrepancies(connection, selection))
            if not matched:
                typer.echo(
                    f"no {' or '.join(selection.statuses)} discrepancy matches; nothing done"
                )
                raise typer.Exit(code=1)
            if writes and matched > BULK_CONFIRM and not yes:
                typer.echo(
                    f"{matched} discrepancies match: add --yes to {action.value} all of them, "
                    "or narrow the selection; nothing done"
                )
                raise typer.Exit(code=1)
        resolver = Resolver(engine, config, _source_opener(source), actor=actor)
        if action is ResolveAction.TAKE_SOURCE:
            outcome = resolver.take_source(selection)
        elif action is ResolveAction.KEEP_LOCAL:
            outcome = resolver.keep_local(selection)
        elif action is ResolveAction.IGNORE:
            outcome = resolver.ignore(selection, reason=reason or "", until=expiry)
        else:
            outcome = resolver.merge(selection, choices, preview=preview)
    _print_outcome(outcome, action, actor, previewed=not writes)
    if action is ResolveAction.IGNORE and outcome.done:
        typer.echo(f"  ignored until {expiry:%Y-%m-%d %H:%M} UTC: {reason}")
    raise typer.Exit(code=1 if outcome.refused else 0)


@reconcile_app.command("export")
def reconcile_export(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="the file to write (with --format), else a folder for all three"
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="csv | json | html (default: all three into the --out folder)"
        ),
    ] = None,
    source: SourceOption = "dealer_feed",
    entity: EntityOption = None,
    kind: KindOption = None,
    severity: SeverityOption = None,
    field: FieldOption = None,
    key: KeyOption = None,
    status: StatusOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="export at most this many")] = None,
) -> None:
    """Write the discrepancies the filters pick as CSV, JSON or one HTML page.

    CSV has a line per differing field; the HTML page is self-contained, each record side by
    side. Without --format all three go into the --out folder.
    """
    from sync_platform.reconcile.report import FORMATS, write_report, write_reports
    from sync_platform.reconcile.store import select_discrepancies

    with reported():
        if fmt is not None:
            _allowed("--format", [fmt], FORMATS)
        selection, config = _selection(source, entity, kind, severity, field, key, status)
        with migrated_warehouse_engine().connect() as connection:
            rows = select_discrepancies(connection, selection, limit)
        title = (
            f"{source} reconciliation: {len(rows)} {' or '.join(selection.statuses)} discrepancies"
        )
        columns = {name: spec.columns for name, spec in config.entities.items()}
        if fmt is None:
            stem = f"reconciliation-{source}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
            written = list(write_reports(rows, out, stem, title=title, columns=columns).values())
        else:
            write_report(rows, out, fmt, title=title, columns=columns)
            written = [out]
    typer.echo(f"{len(rows)} discrepancies written to {', '.join(str(path) for path in written)}")


@reconcile_app.command("runs")
def reconcile_runs(
    source: Annotated[
        str | None, typer.Option("--source", help="one source (default: all)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 10,
    as_json: JsonOption = False,
) -> None:
    """The latest reconciliation runs and what each found per entity."""
    from sync_platform.reconcile.report import as_json as rows_as_json
    from sync_platform.reconcile.store import latest_runs

    with reported(), migrated_warehouse_engine().connect() as connection:
        rows = latest_runs(connection, source, limit)
    if as_json:
        typer.echo(rows_as_json(rows))
        return
    if not rows:
        typer.echo("no reconciliation has run yet")
    for row in rows:
        message = f"  {row['message']}" if row["message"] else ""
        typer.echo(
            f"#{row['id']} {row['source']} [{row['trigger']}] {row['status']}: "
            f"{_when(row['started_at'])} → {_when(row['finished_at'])}{message}"
        )
        for name, found in (row["summary"] or {}).items():
            typer.echo(f"  {name}: {_found(found)}")


def _found(found: dict) -> str:
    """One entity's line of a run summary: what is open, then how it breaks down."""
    text = (
        f"open {found['open']} (new {found['new']}), ignored {found['ignored']}, gone "
        f"{found['gone']}, pending {found['pending']}, unreadable {found['unreadable']}; rows: "
        f"source {found['source_rows']}, warehouse {found['warehouse_rows']}"
    )
    for breakdown in ("by_kind", "by_severity"):
        if found.get(breakdown):
            text += "; " + ", ".join(f"{k} {n}" for k, n in sorted(found[breakdown].items()))
    return text


conflicts_app = typer.Typer(
    help="Records both the source and the warehouse changed, held by a sync for review "
    "(conflict_strategy: manual_review); resolve them with `reconcile resolve … --kind "
    "conflict`.",
    no_args_is_help=True,
)


@conflicts_app.command("list")
def conflicts_list(
    source: SourceOption = "dealer_feed",
    entity: EntityOption = None,
    key: KeyOption = None,
    status: StatusOption = None,
    limit: Annotated[int, typer.Option(min=1, help="show at most this many")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Records held for review (open ones unless --status says otherwise)."""
    reconcile_list(
        source=source,
        entity=entity,
        kind=["conflict"],
        severity=None,
        field=None,
        key=key,
        status=status,
        limit=limit,
        as_json=as_json,
    )


@conflicts_app.command("show")
def conflicts_show(
    discrepancy_id: Annotated[int | None, typer.Argument(help="the conflict's id")] = None,
    key: Annotated[str | None, typer.Option("--key", help="or: a record key")] = None,
    entity: EntityOption = None,
    source: SourceOption = "dealer_feed",
) -> None:
    """One held record: the warehouse's version beside the source's, `*` where they differ,
    both last-modified stamps, and its audit trail."""
    reconcile_show(discrepancy_id=discrepancy_id, key=key, entity=entity, source=source)
