"""Discrepancies (the rows `store.select_discrepancies` returns) as files a person reads or
hands on: CSV for a spreadsheet, JSON for a script, one HTML page for a review.

The HTML is self-contained (inline CSS, no script, no external asset) so it can be mailed or
attached to a ticket, and every value in it is escaped: the values come from the source and
the warehouse, and either may hold markup. At 10k discrepancies a field difference shows its
differing fields, the columns that agree folded away, so the page stays readable.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path
from typing import Any

from sync_platform.engine.severity import KINDS, RANK

CSV_COLUMNS = (
    "id",
    "source",
    "entity",
    "record_key",
    "kind",
    "severity",
    "status",
    "field",
    "source_value",
    "warehouse_value",
    "first_seen_at",
    "last_seen_at",
)
FORMATS = ("csv", "json", "html")
SEVERITIES = sorted(RANK, key=RANK.__getitem__, reverse=True)
ABSENT = object()  # the side that does not have the record at all


def _iso(value: Any) -> Any:
    """Datetimes as ISO strings in UTC (SQLite hands them back without a zone)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _text(value: Any) -> str:
    return "" if value is None or value is ABSENT else str(_iso(value))


def side_by_side(
    row: dict[str, Any], columns: Iterable[str] | None = None
) -> list[tuple[str, Any, Any, bool]]:
    """(column, warehouse value, source value, differs) for every column of the record, in
    `columns` order where given (JSONB keeps no order), `ABSENT` for the side without it.
    `differs` is what the comparison found, not plain inequality: an ignored column such as a
    last-modified stamp may differ without counting."""
    warehouse, source = row.get("warehouse_values"), row.get("source_values")
    names = list(dict.fromkeys([*(columns or []), *(source or {}), *(warehouse or {})]))
    differing = set(row.get("fields") or [])
    return [
        (
            name,
            ABSENT if warehouse is None else warehouse.get(name),
            ABSENT if source is None else source.get(name),
            name in differing,
        )
        for name in names
    ]


def counts(rows: list[dict[str, Any]]) -> dict[str, Counter]:
    return {
        "kind": Counter(row["kind"] for row in rows),
        "severity": Counter(row["severity"] for row in rows),
    }


# --- CSV, JSON ------------------------------------------------------------------------------


def as_csv(rows: list[dict[str, Any]]) -> str:
    """One line per differing field (a missing or extra record: one line, no field)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        base = [_text(row[c]) for c in ("id", "source", "entity", "record_key", "kind")]
        base += [_text(row["severity"]), _text(row["status"])]
        seen = [_text(row["first_seen_at"]), _text(row["last_seen_at"])]
        source, warehouse = row.get("source_values") or {}, row.get("warehouse_values") or {}
        for field in row.get("fields") or [None]:
            values = [field, source.get(field), warehouse.get(field)] if field else [None] * 3
            writer.writerow([*base, *(_text(v) for v in values), *seen])
    return out.getvalue()


def as_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(
        [{name: _iso(value) for name, value in row.items()} for row in rows],
        indent=2,
        default=str,
    )


# --- HTML -----------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}h3{font-size:1em;margin:1.5em 0 .3em}
table{border-collapse:collapse;margin:.3em 0}
th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right}
tr.diff td{background:#fff3c4;font-weight:600}
.absent,.null{color:#999;font-style:italic;font-weight:normal}
.high{color:#b00020}.medium{color:#a05a00}.low{color:#555}
details{margin:.2em 0 .8em}summary{cursor:pointer;color:#555}
.meta{color:#555}
"""


def _cell(value: Any) -> str:
    if value is ABSENT:
        return '<td class="absent">absent</td>'
    if value is None:
        return '<td class="null">null</td>'
    return f"<td>{escape(_text(value))}</td>"


def _field_rows(lines: list[tuple[str, Any, Any, bool]]) -> str:
    marked = {True: '<tr class="diff">', False: "<tr>"}
    return "".join(
        f"{marked[differs]}<td>{escape(name)}</td>{_cell(warehouse)}{_cell(source)}</tr>"
        for name, warehouse, source, differs in lines
    )


def _table(lines: list[tuple[str, Any, Any, bool]]) -> str:
    head = "<tr><th>field</th><th>warehouse</th><th>source</th></tr>"
    return f"<table>{head}{_field_rows(lines)}</table>"


def _discrepancy(row: dict[str, Any], columns: Iterable[str] | None) -> str:
    lines = side_by_side(row, columns)
    severity = escape(str(row["severity"]))
    meta = escape(
        f"{row['kind']}, {row['status']}, first seen {_text(row['first_seen_at'])}, "
        f"last seen {_text(row['last_seen_at'])}"
    )
    note = f"<br>note: {escape(str(row['note']))}" if row.get("note") else ""
    parts = [
        f'<section id="d{escape(str(row["id"]))}">'
        f"<h3>#{escape(str(row['id']))} {escape(str(row['entity']))} "
        f"{escape(str(row['record_key']))} "
        f'<span class="{severity}">{severity}</span></h3>'
        f'<div class="meta">{meta}{note}</div>'
    ]
    if row["kind"] in ("missing", "extra"):
        parts.append(_table(lines))  # one side only: the whole record
    else:
        parts.append(_table([line for line in lines if line[3]]))
        same = [line for line in lines if not line[3]]
        if same:
            parts.append(
                f"<details><summary>{len(same)} other columns</summary>{_table(same)}</details>"
            )
    parts.append("</section>")
    return "".join(parts)


def _summary(rows: list[dict[str, Any]]) -> str:
    table = Counter((row["kind"], row["severity"]) for row in rows)
    present = {kind for kind, _ in table}
    kinds = [k for k in KINDS if k in present] + sorted(present - set(KINDS))
    head = "".join(f"<th>{escape(s)}</th>" for s in SEVERITIES)
    body = "".join(
        f"<tr><th>{escape(kind)}</th>"
        + "".join(f'<td class="n">{table[(kind, s)]}</td>' for s in SEVERITIES)
        + f'<td class="n">{sum(n for (k, _), n in table.items() if k == kind)}</td></tr>'
        for kind in kinds
    )
    totals = counts(rows)["severity"]
    foot = (
        "<tr><th>total</th>"
        + "".join(f'<td class="n">{totals[s]}</td>' for s in SEVERITIES)
        + f'<td class="n">{len(rows)}</td></tr>'
    )
    return f"<table><tr><th>kind</th>{head}<th>total</th></tr>{body}{foot}</table>"


def as_html(
    rows: list[dict[str, Any]], title: str, columns: dict[str, list[str]] | None = None
) -> str:
    """One page: counts by kind and severity, then each discrepancy side by side, grouped
    by entity. `columns` (entity → column order) orders each record's fields."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="meta">{len(rows)} discrepancies; generated {generated}</p>',
        _summary(rows),
    ]
    entity = None
    for row in rows:
        if (row["source"], row["entity"]) != entity:
            entity = (row["source"], row["entity"])
            parts.append(f"<h2>{escape(f'{entity[0]}.{entity[1]}')}</h2>")
        parts.append(_discrepancy(row, (columns or {}).get(row["entity"])))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_reports(
    rows: list[dict[str, Any]],
    directory: Path,
    stem: str,
    *,
    title: str | None = None,
    columns: dict[str, list[str]] | None = None,
) -> dict[str, Path]:
    """`<stem>.csv`, `<stem>.json` and `<stem>.html` in `directory` (created if need be)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for extension in FORMATS:
        path = directory / f"{stem}.{extension}"
        write_report(rows, path, extension, title=title or stem, columns=columns)
        written[extension] = path
    return written


def write_report(
    rows: list[dict[str, Any]],
    path: Path,
    extension: str,
    *,
    title: str,
    columns: dict[str, list[str]] | None = None,
) -> None:
    """One format (csv, json or html) to `path`, its folder created; the CSV keeps its own
    CRLF line ends (RFC 4180)."""
    render = {
        "csv": lambda: as_csv(rows),
        "json": lambda: as_json(rows),
        "html": lambda: as_html(rows, title, columns),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render[extension](), encoding="utf-8", newline="")
