"""`sync-platform reconcile` against a real warehouse (SQLite and PostgreSQL) with drift
planted on both sides (test_reconciliation's `_plant`): the filters pick exactly the
planted records, each action changes exactly what it names and audits it under the actor,
the guards refuse without changing anything, and every error is a message, not a traceback."""

from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sync_platform.cli import app
from sync_platform.warehouse.platform_tables import (
    reconciliation_actions,
    reconciliation_discrepancies,
)
from sync_platform_tests.test_reconciliation import (
    _plant,
    _reconcile,
    _source_stock,
    _stock,
)

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def planted(synced, simulator):
    """The planted drift, reconciled; `.stock`, `.leads` and `.severities` are what the
    reconciliation must have found."""
    engine, resource = synced
    stock, leads, severities = _plant(engine, simulator)
    _reconcile(engine, resource)
    return SimpleNamespace(
        engine=engine, resource=resource, stock=stock, leads=leads, severities=severities
    )


def cli(*args: str):
    return CliRunner().invoke(app, ["reconcile", *args])


def _listed(*filters: str) -> set[str]:
    result = cli("list", "--json", *filters)
    assert result.exit_code == 0, result.output
    return {row["record_key"] for row in json.loads(result.stdout)}


def _key(found, fields: tuple[str, ...]) -> str:
    return next(key for key, _, differing in found if differing == fields)


def _colour(engine, key: str) -> str:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT colour FROM dealer_stock WHERE stock_number = :k"), {"k": key}
        ).scalar_one()


def _audit(engine) -> list:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(reconciliation_actions).order_by(reconciliation_actions.c.id)
            )
        )


def _statuses(engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(
            connection.execute(
                sa.select(
                    reconciliation_discrepancies.c.record_key,
                    reconciliation_discrepancies.c.status,
                )
            ).all()
        )


def test_list_filters_pick_exactly_the_planted_records(planted):
    stock, leads, severities = planted.stock, planted.leads, planted.severities
    found = stock | leads

    assert _listed() == {key for key, _, _ in found}
    assert _listed("--kind", "missing") == {k for k, kind, _ in stock if kind == "missing"}
    assert _listed("--kind", "missing", "--kind", "extra") == {
        k for k, kind, _ in stock if kind in ("missing", "extra")
    }
    assert _listed("--severity", "high") == {k for k, s in severities.items() if s == "high"}
    assert _listed("--severity", "medium", "--entity", "dealer_leads") == {k for k, _, _ in leads}
    assert _listed("--field", "colour") == {_key(stock, ("colour",))}
    assert _listed("--field", "price", "--field", "phone") == {
        _key(stock, ("price",)),
        _key(leads, ("phone",)),
    }
    assert _listed("--kind", "field_diff", "--severity", "low") == {
        _key(stock, ("colour",)),
        _key(stock, ("location",)),
    }
    assert _listed("--status", "resolved") == set()

    table = cli("list", "--entity", "dealer_stock", "--kind", "extra")
    assert table.exit_code == 0
    header, line = table.stdout.splitlines()
    assert header.split()[:6] == ["id", "entity", "key", "kind", "severity", "fields"]
    assert line.split()[1:5] == ["dealer_stock", "STK900001", "extra", "high"]


def test_a_misspelt_filter_is_an_error_not_an_empty_answer(planted):
    for args, message in (
        (["--kind", "missing_record"], "--kind missing_record is not known"),
        (["--field", "color"], "--field color is not known"),
        (["--entity", "dealer_stok"], "no reconciled entity 'dealer_stok'"),
        (["--status", "closed"], "--status closed is not known"),
    ):
        result = cli("list", *args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_show_puts_the_sides_beside_each_other_and_marks_the_differing_fields(planted, simulator):
    key = _key(planted.stock, ("colour",))
    source_colour = _source_stock(simulator)[key]["Colour"]

    shown = cli("show", "--key", key, "--entity", "dealer_stock")

    assert shown.exit_code == 0, shown.output
    marked = [line for line in shown.stdout.splitlines() if line.startswith("*")]
    assert len(marked) == 1 and marked[0].split()[:3] == ["*", "colour", "Puce"]
    assert marked[0].endswith(source_colour)
    assert any(line.split()[:1] == ["make"] for line in shown.stdout.splitlines())
    assert "last modified (updated_at): warehouse 20" in shown.stdout  # not compared, not marked
    assert "audit trail: no action taken yet" in shown.stdout
    by_id = cli("show", str(_ids(planted.engine)[key]))
    assert by_id.stdout == shown.stdout

    missing = next(k for k, kind, _ in planted.stock if kind == "missing")
    one_side = cli("show", "--key", missing)
    assert one_side.exit_code == 0 and "(absent)" in one_side.stdout
    assert not [line for line in one_side.stdout.splitlines() if line.startswith("*")]

    unknown = cli("show", "999999")
    assert unknown.exit_code == 2 and "no discrepancy #999999" in unknown.output


def _ids(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(
            connection.execute(
                sa.select(
                    reconciliation_discrepancies.c.record_key, reconciliation_discrepancies.c.id
                )
            ).all()
        )


def test_ignore_without_a_reason_fails_with_the_message_and_changes_nothing(planted):
    engine = planted.engine
    before = _statuses(engine)

    result = cli("resolve", "ignore", "--kind", "status_mismatch")

    assert result.exit_code == 2
    assert "ignore needs a reason" in result.output and "--reason" in result.output
    assert "Traceback" not in result.output
    assert _statuses(engine) == before and _audit(engine) == []


def test_a_bulk_resolution_over_the_limit_needs_yes_and_changes_nothing_without_it(
    synced,
    simulator,
):
    engine, resource = synced
    keys = _stock(engine, where="1 = 1", limit=25)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE dealer_stock SET location = 'Nowhere' WHERE stock_number IN :keys"
            ).bindparams(sa.bindparam("keys", expanding=True)),
            {"keys": keys},
        )
    _reconcile(engine, resource)
    assert _listed("--field", "location") == set(keys)

    refused = cli("resolve", "take-source", "--field", "location", "--by", "ana")

    assert refused.exit_code == 1
    assert "25 discrepancies match" in refused.output and "--yes" in refused.output
    assert set(_statuses(engine).values()) == {"open"} and _audit(engine) == []
    assert _stock(engine, "location", where="location = 'Nowhere'", limit=100) == ["Nowhere"] * 25

    done = cli("resolve", "take-source", "--field", "location", "--by", "ana", "--yes")

    assert done.exit_code == 0, done.output
    assert "take-source by ana: 25 done, 0 refused" in done.output
    assert _stock(engine, "location", where="location = 'Nowhere'", limit=100) == []
    assert len(_audit(engine)) == 25


def test_take_source_on_a_key_rewrites_that_row_and_audits_the_actor(planted, simulator):
    engine = planted.engine
    key = _key(planted.stock, ("colour",))
    other = _key(planted.stock, ("price",))
    price_before = _stock(engine, "price", where=f"stock_number = '{other}'")

    result = cli("resolve", "take-source", "--key", key, "--by", "ana")

    assert result.exit_code == 0, result.output
    assert f"take-source by ana: 1 done, 0 refused\n  done: {key}" in result.stdout
    assert _colour(engine, key) == _source_stock(simulator)[key]["Colour"]
    assert _stock(engine, "price", where=f"stock_number = '{other}'") == price_before
    (action,) = _audit(engine)
    assert (action.actor, action.action, action.record_key) == ("ana", "take_source", key)
    assert action.before["colour"] == "Puce" and action.after["colour"] != "Puce"
    assert _statuses(engine)[key] == "resolved"
    shown = cli("show", "--key", key)
    assert "ana  take_source  resynced from the source" in shown.stdout


def test_the_actor_defaults_to_the_environment_and_ignore_records_its_reason(planted, monkeypatch):
    engine = planted.engine
    monkeypatch.setenv("SYNC_PLATFORM_USER", "bo")
    key = next(k for k, kind, _ in planted.leads if kind == "status_mismatch")

    result = cli(
        "resolve",
        "ignore",
        "--kind",
        "status_mismatch",
        "--reason",
        "customer asked",
        "--days",
        "3",
    )

    assert result.exit_code == 0, result.output
    (action,) = _audit(engine)
    assert (action.actor, action.action, action.record_key) == ("bo", "ignore", key)
    assert "customer asked" in action.detail
    assert _statuses(engine)[key] == "ignored"
    assert "ignored until" in result.stdout and "customer asked" in result.stdout


def test_merge_without_apply_writes_nothing_and_with_apply_merges(planted, simulator):
    engine = planted.engine
    key = _key(planted.stock, ("colour",))
    source_colour = _source_stock(simulator)[key]["Colour"]

    preview = cli("resolve", "merge", "--key", key, "--choose", "colour=source")

    assert preview.exit_code == 0, preview.output
    assert "nothing written" in preview.stdout
    assert f"{key}: colour Puce → {source_colour}" in preview.stdout
    assert _colour(engine, key) == "Puce" and _audit(engine) == []
    assert _statuses(engine)[key] == "open"

    applied = cli("resolve", "merge", "--key", key, "--choose", "colour=source", "--apply")

    assert applied.exit_code == 0, applied.output
    assert _colour(engine, key) == source_colour
    assert [a.action for a in _audit(engine)] == ["merge"]

    wrong = cli("resolve", "merge", "--key", key, "--choose", "colour")
    assert wrong.exit_code == 2 and "FIELD=source" in wrong.output


def test_a_refused_record_is_reported_with_its_reason_and_exit_code_1(planted):
    missing = next(k for k, kind, _ in planted.stock if kind == "missing")

    result = cli("resolve", "keep-local", "--key", missing)

    assert result.exit_code == 1
    assert f"refused {missing}: the warehouse has no version to keep" in result.stdout


def test_an_unconfigured_source_is_a_message_and_ignore_does_not_need_it(planted, monkeypatch):
    monkeypatch.delenv("DEALER_FEED_BASE_URL")
    key = _key(planted.stock, ("price",))

    result = cli("resolve", "take-source", "--key", key)

    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "dealer_feed is not configured: set DEALER_FEED_BASE_URL" in result.output
    ignored = cli("resolve", "ignore", "--key", key, "--reason", "repriced on purpose")
    assert ignored.exit_code == 0, ignored.output


def test_export_writes_the_three_formats_and_the_html_escapes_a_hostile_value(planted, tmp_path):
    engine, stock = planted.engine, planted.stock
    key = _key(stock, ("colour",))
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE dealer_stock SET colour = :v WHERE stock_number = :k"),
            {"v": HOSTILE, "k": key},
        )
    _reconcile(engine, planted.resource)  # the discrepancy now holds the hostile value

    paths = {}
    for fmt in ("csv", "json", "html"):
        paths[fmt] = tmp_path / "one" / f"report.{fmt}"
        result = cli(
            "export", "--format", fmt, "--out", str(paths[fmt]), "--entity", "dealer_stock"
        )
        assert result.exit_code == 0, result.output
        assert f"6 discrepancies written to {paths[fmt]}" in result.stdout

    page = paths["html"].read_text()
    assert HOSTILE not in page and "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not any(asset in page for asset in ("src=", "href=", "<link", "@import", "url("))
    lines = list(csv.DictReader(io.StringIO(paths["csv"].read_text(), newline="")))
    colour = next(line for line in lines if line["record_key"] == key)
    assert (colour["field"], colour["warehouse_value"]) == ("colour", HOSTILE)
    assert {line["record_key"] for line in lines} == {k for k, _, _ in stock}
    exported = json.loads(paths["json"].read_text())
    assert (
        next(r for r in exported if r["record_key"] == key)["warehouse_values"]["colour"] == HOSTILE
    )

    everything = cli("export", "--out", str(tmp_path / "all"))
    assert everything.exit_code == 0, everything.output
    assert sorted(p.suffix for p in (tmp_path / "all").iterdir()) == [".csv", ".html", ".json"]


def test_runs_lists_the_latest_reconciliation_with_its_counts(planted):
    result = cli("runs")

    assert result.exit_code == 0, result.output
    assert "dealer_feed [manual] succeeded" in result.stdout
    assert "dealer_stock: open 6 (new 6)" in result.stdout
    assert "extra 1, field_diff 3, missing 2" in result.stdout
    (run,) = json.loads(cli("runs", "--json").stdout)
    assert run["summary"]["dealer_leads"]["by_kind"] == {"status_mismatch": 1, "field_diff": 1}
