"""docs/tables.md is generated from the shipped source YAML and must equal the generator's
output, so the table reference cannot go stale."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa

from sync_platform.warehouse.entity_tables import entity_table
from sync_platform.warehouse.reference import COMMAND, REPO_DOC, render, shipped_sources


def test_the_committed_reference_is_the_generated_one():
    committed = REPO_DOC.read_text(encoding="utf-8")
    assert committed == render(), f"docs/tables.md is stale: run `{COMMAND}` and commit it"


def test_every_table_and_column_is_described():
    """What `sync-platform db upgrade` creates (the Core tables built from the same configs)
    is what the reference lists, column by column."""
    text = render()
    for source in shipped_sources():
        assert f"## {source.source}\n" in text
        for entity in source.entities.values():
            section = text.split(f"### `{entity.table}`\n", 1)[1].split("\n### ", 1)[0]
            table = entity_table(entity, sa.MetaData())
            for column in table.columns:
                if column.name.startswith("_"):  # bookkeeping: described once at the top
                    assert f"| `{column.name}` |" in text
                else:
                    assert f"| `{column.name}` |" in section, (entity.table, column.name)
            assert "primary key | " + ", ".join(f"`{k}`" for k in entity.key) in section


def test_a_config_change_shows_in_the_reference():
    sources = shipped_sources()
    dealer = next(source for source in sources if source.source == "dealer_feed")
    stock = dealer.entities["dealer_stock"]
    fields = {**stock.fields}
    fields["engine_size"] = fields["odometer"].model_copy(
        update={"source": "EngineSize", "description": "litres"}
    )
    changed = dealer.model_copy(
        update={
            "entities": {
                **dealer.entities,
                "dealer_stock": stock.model_copy(update={"fields": fields}),
            }
        }
    )
    text = render([changed if source is dealer else source for source in sources])
    assert "| `engine_size` | BIGINT | yes | `EngineSize` | litres; checked: ≥ 0 |" in text
    assert text != render()


def test_the_module_prints_it():
    result = subprocess.run(
        [sys.executable, "-m", "sync_platform.warehouse.reference"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == render()
