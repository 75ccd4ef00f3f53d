"""What `gap_resync_backoff_minutes` means, pinned to the code that reads it
(`gaps.resync_candidates`, asked by `sync_gap_sensor`): the first resync of a gap does not
wait; the second waits the backoff after the first started; the wait doubles from there.
`config list` and docs/operations.md must say the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sync_platform.cli import app
from sync_platform.engine.gaps import resync_candidates
from sync_platform.warehouse.platform_tables import sync_gaps

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ENTITY = ("dealer_feed", "dealer_stock")
DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def _due(engine: sa.Engine, attempts: int, minutes_ago: float | None) -> bool:
    """Whether a gap with `attempts` made, the last `minutes_ago`, is due at NOW (backoff 5)."""
    last = None if minutes_ago is None else NOW - timedelta(minutes=minutes_ago)
    with engine.begin() as connection:
        connection.execute(sa.delete(sync_gaps))
        connection.execute(
            sa.insert(sync_gaps).values(
                source=ENTITY[0],
                entity=ENTITY[1],
                record_key="STK1",
                status="open",
                detected_at=NOW - timedelta(days=1),
                attempts=attempts,
                last_attempt_at=last,
            )
        )
        found = resync_candidates(
            connection,
            max_attempts=10,
            backoff=timedelta(minutes=5),
            now=NOW,
            entities={ENTITY},
        )
    return bool(found)


@pytest.mark.parametrize(
    ("attempts", "minutes_ago", "due"),
    [
        (0, None, True),  # never tried: the first attempt is immediate
        (1, 4.9, False),  # the second waits the backoff (5) after the first
        (1, 5.1, True),
        (2, 9.9, False),  # the third waits twice the backoff
        (2, 10.1, True),
        (3, 19.9, False),  # the fourth four times
        (3, 20.1, True),
    ],
)
def test_the_backoff_is_the_wait_before_the_second_attempt_doubling_after(
    engine, attempts, minutes_ago, due
):
    assert _due(engine, attempts, minutes_ago) is due


def test_config_list_and_the_operations_doc_say_what_the_code_does(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNC_PLATFORM_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    result = CliRunner().invoke(app, ["config", "list"])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("gap_resync_backoff_minutes")]
    assert "first resync (immediate)" in line and "second" in line and "doubles" in line
    assert "before the first" not in line  # what the help used to say, wrongly
    (row,) = [x for x in DOC.read_text().splitlines() if x.startswith("| `gap_resync_backoff")]
    assert "without waiting" in row and "its second" in row and "doubles" in row
