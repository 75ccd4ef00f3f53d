"""Audit retention (`retention_audit_days`, part of `retention_cleanup`): old entity syncs go
with their record log, errors and conflicts; recent ones, the newest of each entity, and every
sync something open still points at stay; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa
from typer.testing import CliRunner

from sync_platform.cli import app
from sync_platform.definitions import build_definitions
from sync_platform.defs.ops.retention import AUDIT_DAYS
from sync_platform.engine import audit
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.runtime_config import set_setting
from sync_platform.warehouse.platform_tables import (
    sync_conflicts,
    sync_errors,
    sync_gaps,
    sync_quarantine,
    sync_record_log,
    sync_runs,
    sync_state,
    webhook_inbox,
)

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=100)  # past a 30-day audit retention, inside every other one
ANCIENT = NOW - timedelta(days=400)  # past every retention
STOCK = {"source": "dealer_feed", "entity": "dealer_stock"}


class Planter:
    def __init__(self, connection: sa.Connection):
        self.connection = connection

    def run(self, started: datetime, status: str = "succeeded", entity: str = "dealer_stock"):
        """A sync with one record-log row and one error of its own; its id."""
        run_id = self.connection.execute(
            sa.insert(sync_runs)
            .values(
                source="dealer_feed",
                entity=entity,
                trigger="scheduled",
                status=status,
                started_at=started,
                finished_at=None if status == "running" else started + timedelta(seconds=5),
            )
            .returning(sync_runs.c.id)
        ).scalar_one()
        self.connection.execute(
            sa.insert(sync_record_log).values(
                sync_run_id=run_id, entity=entity, record_key=f"R{run_id}",
                operation="update", result="success", logged_at=started,
            )
        )  # fmt: skip
        self.connection.execute(
            sa.insert(sync_errors).values(
                sync_run_id=run_id, category="network", message="x", occurred_at=started,
                source="dealer_feed", entity=entity,
            )
        )  # fmt: skip
        return run_id

    def conflict(self, run_id: int, key: str, at: datetime) -> None:
        self.connection.execute(
            sa.insert(sync_conflicts).values(
                sync_run_id=run_id, **STOCK, record_key=key, kind="stale_source",
                resolution="kept_warehouse", detected_at=at,
            )
        )  # fmt: skip

    def gap(self, run_id: int, key: str, status: str) -> None:
        self.connection.execute(
            sa.insert(sync_gaps).values(
                **STOCK, record_key=key, status=status, detected_at=OLD,
                detected_by_run_id=run_id, resolved_at=NOW if status == "resolved" else None,
            )
        )  # fmt: skip

    def quarantine(self, run_id: int, key: str, at: datetime) -> None:
        self.connection.execute(
            sa.insert(sync_quarantine).values(
                sync_run_id=run_id, **STOCK, record_key=key, raw_record="{}", reason="bad",
                quarantined_at=at,
            )
        )  # fmt: skip


def _plant(engine: sa.Engine) -> dict[str, int]:
    """Syncs named by why they should go or stay; name → id. The special ones come first,
    so they are not among the newest 100 of dealer_stock."""
    with engine.begin() as connection:
        plant = Planter(connection)
        ids = {name: plant.run(OLD) for name in (
            "cursor", "open_gap", "lost_gap", "resolved_gap", "quarantine_waiting",
            "quarantine_purged", "quarantine_resolved", "refused_delivery", "latest_conflict",
            "superseded_conflict",
        )}  # fmt: skip
        ids["running"] = plant.run(OLD, status="running")
        ids["ancient"] = plant.run(ANCIENT, status="failed")
        plain = [plant.run(OLD) for _ in range(110)]
        # dealer_stock has 123 syncs: its newest 100 are `recent` and plain[11:]
        ids |= {"plain_first": plain[0], "plain_last_deleted": plain[10]}
        ids |= {"plain_oldest_kept": plain[11], "plain_newest": plain[-1]}
        ids["recent"] = plant.run(NOW - timedelta(days=1))
        ids["leads_old"] = plant.run(OLD, entity="dealer_leads")  # one of few: kept

        cursor = {"cursor": "c", "updated_at": OLD, "sync_run_id": ids["cursor"]}
        connection.execute(sa.insert(sync_state).values(**STOCK, **cursor))
        plant.gap(ids["open_gap"], "G-open", "open")
        plant.gap(ids["lost_gap"], "G-lost", "unrecoverable")
        plant.gap(ids["resolved_gap"], "G-resolved", "resolved")
        plant.quarantine(ids["quarantine_waiting"], "Q-waiting", OLD)  # inside its 180 days
        plant.quarantine(ids["quarantine_purged"], "Q-purged", ANCIENT)  # purged first
        plant.quarantine(ids["quarantine_resolved"], "Q-resolved", OLD)
        connection.execute(
            sa.update(sync_quarantine)
            .where(sync_quarantine.c.record_key == "Q-resolved")
            .values(resolved_at=OLD)
        )
        connection.execute(
            sa.insert(webhook_inbox).values(
                delivery_id="refused", workflow_key="new_lead", origin="receiver", headers={},
                body="{}", status="quarantined", received_at=OLD, processed_at=OLD,
                processed_by_run_id=ids["refused_delivery"], reason="not JSON",
            )
        )  # fmt: skip
        plant.conflict(ids["latest_conflict"], "C-latest", OLD)
        plant.conflict(ids["superseded_conflict"], "C-again", OLD)
        plant.conflict(ids["recent"], "C-again", NOW)
        connection.execute(  # run-level errors (a failed Dagster run, no sync of its own)
            sa.insert(sync_errors),
            [
                {
                    "dagster_run_id": "old",
                    "category": "unknown",
                    "message": "m",
                    "occurred_at": OLD,
                },
                {
                    "dagster_run_id": "new",
                    "category": "unknown",
                    "message": "m",
                    "occurred_at": NOW,
                },
            ],
        )
    return ids


def _ids(engine: sa.Engine, column, *where) -> set:
    with engine.connect() as connection:
        return set(connection.execute(sa.select(column).where(*where)).scalars())


def test_the_cleanup_purges_old_syncs_and_keeps_recent_and_still_needed_ones(engine, warehouse_url):
    ids = _plant(engine)
    with engine.begin() as connection:
        set_setting(connection, AUDIT_DAYS.key, "30")
        set_setting(connection, "retention_record_log_days", "365")  # the audit's to delete
    job = build_definitions({"warehouse": WarehouseResource(url=warehouse_url)}).resolve_job_def(
        "retention_cleanup"
    )
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    figures = {key: value.value for key, value in output.event_specific_data.metadata.items()}

    gone = {"resolved_gap", "quarantine_purged", "quarantine_resolved", "superseded_conflict"}
    gone |= {"ancient"}
    gone |= {"plain_first", "plain_last_deleted"}
    kept = set(ids) - gone
    remaining = _ids(engine, sync_runs.c.id)
    assert {name for name in ids if ids[name] in remaining} == kept
    # the 11 oldest plain syncs went; the newest 100 of dealer_stock (recent + 99 plain) stayed
    assert figures["audit_runs_deleted"] == 11 + 5
    assert len(remaining) == 1 + 6 + 1 + 99 + 1  # leads, 6 still needed, running, plain, recent
    assert figures["audit_runs_kept"] == len(remaining) - 1  # all but `recent` are older
    # a sync's detail went with it, and only then
    assert _ids(engine, sync_record_log.c.sync_run_id) == remaining
    assert _ids(engine, sync_errors.c.sync_run_id, sync_errors.c.sync_run_id.is_not(None)) == (
        remaining
    )
    assert figures["record_log_deleted"] == 1  # `ancient`'s, by its own retention (365 days)
    assert figures["audit_record_log_deleted"] == figures["audit_runs_deleted"] - 1
    assert figures["audit_errors_deleted"] == figures["audit_runs_deleted"] + 1  # + run-level
    assert _ids(engine, sync_errors.c.dagster_run_id, sync_errors.c.sync_run_id.is_(None)) == {
        "new"
    }
    assert _ids(engine, sync_conflicts.c.record_key) == {"C-latest", "C-again"}
    assert figures["audit_conflicts_deleted"] == 1
    assert _ids(engine, sync_conflicts.c.sync_run_id, sync_conflicts.c.record_key == "C-again") == {
        ids["recent"]
    }
    # open items were not touched; a closed gap outlives the sync that found it
    assert _ids(engine, sync_gaps.c.record_key) == {"G-open", "G-lost", "G-resolved"}
    assert _ids(engine, sync_gaps.c.detected_by_run_id, sync_gaps.c.record_key == "G-resolved") == {
        None
    }
    assert _ids(engine, sync_quarantine.c.record_key) == {"Q-waiting", "Q-resolved"}
    assert _ids(engine, sync_quarantine.c.sync_run_id) == {ids["quarantine_waiting"], None}
    assert _ids(engine, webhook_inbox.c.delivery_id) == {"refused"}
    assert _ids(engine, sync_state.c.sync_run_id) == {ids["cursor"]}


def test_the_default_keeps_a_year(engine):
    ids = _plant(engine)
    before = _ids(engine, sync_runs.c.id)
    counts = audit.purge_audit(engine, NOW - timedelta(days=AUDIT_DAYS.default))
    assert AUDIT_DAYS.default == 365
    assert _ids(engine, sync_runs.c.id) == before - {ids["ancient"]}
    assert counts["audit_runs_deleted"] == 1
    assert counts["audit_errors_deleted"] == 1 + 0  # its own; the run-level ones are younger


def test_purging_goes_in_batches_and_keeps_each_entitys_newest(engine):
    with engine.begin() as connection:
        plant = Planter(connection)
        old = [plant.run(OLD + timedelta(minutes=n)) for n in range(10)]
        for run_id in old:  # two more record-log rows each: three in all
            for n in range(2):
                connection.execute(
                    sa.insert(sync_record_log).values(
                        sync_run_id=run_id, entity="dealer_stock", record_key=f"X{run_id}-{n}",
                        operation="insert", result="success", logged_at=OLD,
                    )
                )  # fmt: skip
    counts = audit.purge_audit(
        engine, NOW - timedelta(days=30), keep_latest=2, batch_size=3, detail_batch_size=2
    )
    assert _ids(engine, sync_runs.c.id) == set(old[-2:])
    assert counts["audit_runs_deleted"] == 8 and counts["audit_record_log_deleted"] == 24
    assert counts["audit_runs_kept"] == 2
    assert audit.purge_audit(engine, NOW, keep_latest=2)["audit_runs_deleted"] == 0


def test_the_newest_kept_cover_what_the_alert_rules_and_checks_read_back():
    from sync_platform.alerting.rules import HISTORY
    from sync_platform.orchestration.checks import HISTORY_SCANNED

    assert max(HISTORY, HISTORY_SCANNED) <= audit.AUDIT_HISTORY_KEPT


def test_the_setting_is_listed_and_validated(warehouse_url, monkeypatch):
    monkeypatch.setenv("SYNC_PLATFORM_WAREHOUSE_URL", warehouse_url)
    listed = CliRunner().invoke(app, ["config", "list"])
    assert listed.exit_code == 0, listed.output
    assert "retention_audit_days = 365" in listed.stdout
    refused = CliRunner().invoke(app, ["config", "set", "retention_audit_days", "0"])
    assert refused.exit_code == 2 and "must be a whole number ≥ 1" in refused.stderr
