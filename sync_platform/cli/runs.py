"""`sync-platform runs`: the entity syncs of the audit (`sync_runs`), filtered by time,
source, entity, status or a record key they touched, as a table, CSV or JSON.

Every filter is checked first: a source or entity the platform does not know (neither
configured nor in the audit) is an error listing the known ones, not an empty answer.
CSV and JSON are written row by row as the database hands them over, so exporting the whole
history (`--limit 0`) never holds it in memory. Timestamps are UTC: ISO-8601 with their
offset in CSV and JSON.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, TextIO

import typer

from sync_platform.cli.shared import fail, migrated_warehouse_engine, reported
from sync_platform.errors import ConfigurationError

DEFAULT_LIMIT = 20
MESSAGE_WIDTH = 80


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def parse_moment(option: str, text: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date (midnight UTC; with `end_of_day`, the next midnight, so `--until
    2025-03-01` takes in the whole day) or datetime (UTC unless it carries an offset)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        moment = datetime.combine(day, time(), UTC)
        return moment + timedelta(days=1) if end_of_day else moment
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"{option} {text!r} is not an ISO date or datetime",
            hint="e.g. 2025-03-01, 2025-03-01T14:30 (UTC) or 2025-03-01T14:30+02:00",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _known(option: str, given: list[str], known: Iterable[str], where: str = "") -> None:
    known = sorted(set(known))
    wrong = sorted(set(given) - set(known))
    if wrong:
        raise ConfigurationError(
            f"{option} {', '.join(wrong)}: not a known {option.strip('-')}{where}",
            hint=f"one of: {', '.join(known) or '(none)'}",
        )


def _selection(
    connection,
    since: str | None,
    until: str | None,
    sources: list[str],
    entities: list[str],
    statuses: list[str],
    key: str | None,
):
    """The filters, checked: (RunFilter, every known (source, entity))."""
    from sync_platform.config import all_source_configs
    from sync_platform.engine.history import STATUSES, RunFilter, audited_entities

    pairs = {(s.source, name) for s in all_source_configs() for name in s.entities}
    pairs |= audited_entities(connection)
    _known("--source", sources, (source for source, _ in pairs))
    in_sources = [(s, e) for s, e in pairs if not sources or s in sources]
    _known(
        "--entity",
        entities,
        (entity for _, entity in in_sources),
        f" of {', '.join(sorted(set(sources)))}" if sources else "",
    )
    _known("--status", statuses, STATUSES)
    start = parse_moment("--since", since) if since else None
    end = parse_moment("--until", until, end_of_day=True) if until else None
    if start and end and start >= end:
        raise ConfigurationError(
            f"--since {since} is not before --until {until}", hint="swap them, or widen the range"
        )
    if key is not None and not key.strip():
        raise ConfigurationError("--key is empty", hint="give the record key, e.g. STK000042")
    selection = RunFilter(
        since=start,
        until=end,
        sources=tuple(sources),
        entities=tuple(entities),
        statuses=tuple(statuses),
        key=key,
    )
    return selection, pairs


def _text(value: Any) -> str:
    """A value as CSV shows it: ISO timestamps, JSON for mappings and lists, '' for null."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    return str(value)


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def write_csv(out: TextIO, records: Iterator[dict], columns: list[str]) -> int:
    writer = csv.writer(out)
    writer.writerow(columns)
    count = 0
    for record in records:
        writer.writerow([_text(record[name]) for name in columns])
        count += 1
    return count


def write_json(out: TextIO, records: Iterator[dict]) -> int:
    """A JSON array, one run per line, written as the runs arrive."""
    out.write("[")
    count = 0
    for record in records:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(record, default=_json_value))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_table(out: TextIO, records: Iterator[dict], entity_width: int, with_key: bool) -> int:
    """Fixed columns (so rows can be written as they arrive), the message last."""
    header = (
        f"{'id':>7}  {'started (UTC)':19}  {'entity':{entity_width}}  {'trigger':9}  "
        f"{'kind':8}  {'status':9}  {'fetched':>8}  {'+ins':>7}  {'~upd':>7}  {'-del':>6}  "
        f"{'quar':>5}  {'gaps':>5}  {'seconds':>8}  " + (f"{'touched':12}  " if with_key else "")
    ) + "message"
    count = 0
    for r in records:
        if not count:
            out.write(header.rstrip() + "\n")
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        message = " ".join((r["message"] or "").split())
        if len(message) > MESSAGE_WIDTH:
            message = message[: MESSAGE_WIDTH - 1] + "…"
        touched = f"{', '.join(r['touched']):12}  " if with_key else ""
        line = (
            f"{r['id']:>7}  {r['started_at']:%Y-%m-%d %H:%M:%S}  "
            f"{r['source'] + '.' + r['entity']:{entity_width}}  {r['trigger']:9}  "
            f"{r['kind'] or '-':8}  {r['status']:9}  {r['fetched']:>8}  {r['inserted']:>7}  "
            f"{r['updated']:>7}  {r['soft_deleted']:>6}  {r['quarantined']:>5}  "
            f"{'-' if r['gap_count'] is None else r['gap_count']:>5}  {seconds:>8}  "
            f"{touched}{message}"
        )
        out.write(line.rstrip() + "\n")
        count += 1
    if not count:
        out.write("no sync matches\n")
    return count


def runs(
    since: Annotated[
        str | None,
        typer.Option(
            help="runs started at or after this ISO date or datetime (UTC unless it has an offset)"
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="runs started before this datetime; a date alone includes that day"),
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="e.g. dealer_feed (repeatable)")
    ] = None,
    entity: Annotated[
        list[str] | None, typer.Option("--entity", help="e.g. dealer_stock (repeatable)")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="running | succeeded | warning | failed (repeatable)"),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="runs that wrote, soft-deleted, quarantined, conflicted on, opened or closed "
            "a gap of, or failed on this record key (the record log keeps at most "
            "record_log_limit records a sync, for retention_record_log_days; a sync that "
            "found the record unchanged logs nothing)",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=0, help="the newest N matching runs; 0: every one")
    ] = DEFAULT_LIMIT,
    output: Annotated[
        Format | None,
        typer.Option("--format", help="table (default), csv or json (for exports)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the same as --format json")] = False,
) -> None:
    """The entity syncs of the audit table, newest first, filtered (time in UTC)."""
    if as_json and output not in (None, Format.JSON):
        fail(ConfigurationError(f"--json and --format {output} disagree", hint="give one"))
    output = Format.JSON if as_json else (output or Format.TABLE)
    wanted = None if limit == 0 else limit
    with reported():
        engine = migrated_warehouse_engine()
        try:
            with engine.connect() as checking:
                selection, pairs = _selection(
                    checking, since, until, source or [], entity or [], status or [], key
                )
            with engine.connect() as connection:
                more = _write(connection, selection, pairs, output, wanted)
        finally:
            engine.dispose()
    if more:
        typer.echo(f"(the newest {wanted} shown; more match: --limit 0 for all)", err=True)


def _write(connection, selection, pairs: set[tuple[str, str]], output: Format, wanted) -> bool:
    """Write the selected runs to stdout as they arrive; True when more than `wanted` match."""
    from sync_platform.engine.history import COLUMNS, runs_query, stream_runs

    with_key = selection.key is not None
    entities = {name for s, name in pairs if not selection.sources or s in selection.sources}
    query = runs_query(selection, entities, None if wanted is None else wanted + 1)
    records = stream_runs(connection, query, with_key=with_key)
    shown = itertools.islice(records, wanted)
    out = sys.stdout
    try:
        if output is Format.CSV:
            count = write_csv(out, shown, [*COLUMNS, *(["touched"] if with_key else [])])
        elif output is Format.JSON:
            count = write_json(out, shown)
        else:
            width = max([len("entity"), *(len(f"{s}.{e}") for s, e in pairs)])
            count = write_table(out, shown, width, with_key)
        out.flush()
    except BrokenPipeError:  # `sync-platform runs … | head`: the reader has enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(code=0) from None
    return wanted is not None and count == wanted and next(records, None) is not None
