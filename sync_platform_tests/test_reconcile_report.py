"""The discrepancy exports (reconcile/report.py) on hand-written rows: the CSV's line per
differing field, ISO times in the JSON, and an HTML page that escapes every value and loads
nothing from anywhere."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import UTC, datetime

from sync_platform.reconcile.report import as_csv, as_html, as_json, write_reports

SEEN = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
HOSTILE = "<script>alert(\"x\")</script> & 'quoted'"


def _row(id_, key, kind, fields, source, warehouse, **extra):
    return {
        "id": id_,
        "source": "dealer_feed",
        "entity": "dealer_stock",
        "record_key": key,
        "kind": kind,
        "severity": extra.pop("severity", "low"),
        "fields": fields,
        "source_values": source,
        "warehouse_values": warehouse,
        "fingerprint": "f" * 32,
        "status": "open",
        "first_seen_at": SEEN,
        "last_seen_at": SEEN.replace(tzinfo=None),  # as SQLite hands it back
        "last_run_id": 1,
        "ignored_until": None,
        "resolution": None,
        "note": None,
        "resolved_at": None,
        **extra,
    }


CAR = {"stock_number": "STK1", "make": "Mazda", "colour": "Red", "price": "100.00"}
ROWS = [
    _row(
        1,
        "STK1",
        "field_diff",
        ["colour", "price"],
        CAR,
        CAR | {"colour": HOSTILE, "price": "110.00"},
        severity="medium",
    ),
    _row(2, "STK2", "missing", [], CAR | {"stock_number": "STK2"}, None, severity="high"),
    _row(3, "STK3", "extra", [], None, CAR | {"stock_number": "STK3", "colour": None}),
]


def test_csv_has_a_line_per_differing_field_and_one_for_a_missing_or_extra_record():
    lines = list(csv.DictReader(io.StringIO(as_csv(ROWS), newline="")))

    assert list(lines[0]) == [
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
    ]
    assert [(line["record_key"], line["field"]) for line in lines] == [
        ("STK1", "colour"),
        ("STK1", "price"),
        ("STK2", ""),
        ("STK3", ""),
    ]
    assert (lines[0]["source_value"], lines[0]["warehouse_value"]) == ("Red", HOSTILE)
    assert (lines[1]["source_value"], lines[1]["warehouse_value"]) == ("100.00", "110.00")
    assert lines[2]["source_value"] == lines[2]["warehouse_value"] == ""
    assert lines[0]["first_seen_at"] == lines[0]["last_seen_at"] == "2025-03-01T09:30:00+00:00"


def test_json_is_the_rows_with_times_as_iso_strings():
    exported = json.loads(as_json(ROWS))

    assert [row["record_key"] for row in exported] == ["STK1", "STK2", "STK3"]
    assert exported[0]["first_seen_at"] == "2025-03-01T09:30:00+00:00"
    assert exported[0]["last_seen_at"] == "2025-03-01T09:30:00+00:00"
    assert exported[0]["warehouse_values"]["colour"] == HOSTILE
    assert exported[1]["warehouse_values"] is None and exported[2]["ignored_until"] is None


def test_html_escapes_every_value_and_loads_nothing():
    page = as_html(ROWS, title="drift <b>report</b>")

    assert "<script" not in page and HOSTILE not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quoted&#x27;" in page
    assert "<title>drift &lt;b&gt;report&lt;/b&gt;</title>" in page
    assert not re.search(r"src=|href=|<link|@import|url\(", page)


def test_html_counts_by_kind_and_severity_and_highlights_only_the_differing_fields():
    page = as_html(ROWS, title="t", columns={"dealer_stock": list(CAR)})

    summary = page[page.index("<table>") : page.index("</table>")]
    assert '<th>field_diff</th><td class="n">0</td><td class="n">1</td>' in summary
    assert '<th>total</th><td class="n">1</td><td class="n">1</td><td class="n">1</td>' in (
        summary.replace("\n", "")
    )
    first = page[page.index('id="d1"') : page.index('id="d2"')]
    assert first.count('class="diff"') == 2
    assert '<tr class="diff"><td>colour</td>' in first and "<td>price</td>" in first
    # The columns that agree are folded away, still there to open.
    assert "<details><summary>2 other columns</summary>" in first
    assert "<td>make</td><td>Mazda</td><td>Mazda</td>" in first
    missing = page[page.index('id="d2"') : page.index('id="d3"')]
    assert 'class="diff"' not in missing and missing.count('<td class="absent">absent</td>') == 4
    extra = page[page.index('id="d3"') :]
    assert '<td>colour</td><td class="null">null</td>' in extra


def test_ten_thousand_discrepancies_make_one_page_quickly(tmp_path):
    rows = [
        _row(n, f"STK{n:06d}", "field_diff", ["colour"], CAR, CAR | {"colour": "Puce"})
        for n in range(10_000)
    ]
    started = time.monotonic()

    written = write_reports(rows, tmp_path / "out", "drift")

    assert time.monotonic() - started < 20
    assert written == {f: tmp_path / "out" / f"drift.{f}" for f in ("csv", "json", "html")}
    page = written["html"].read_text()
    assert page.count("<section") == 10_000
    assert len(page) < 10_000 * 1_000  # under 1 kB per field difference
