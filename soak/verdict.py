"""The soak's judgement once the platform has settled: the warehouse against the simulator's
final state (row by row, on key and row hash), the webhook inbox against every execution
sent, the alerts against the planted faults, and Dagster's ticks and runs.

The expected rows are built from the simulator's state dumps through the platform's own
mapping and validation (a record the platform must quarantine is not expected in the
warehouse); the comparison itself is plain key and hash sets, so a lost, stale or extra row
shows up by key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import httpx
import polars as pl
import sqlalchemy as sa

from soak.load import EXPLAINED_ALERTS, Ledger, Planted
from sync_platform.config import all_source_configs
from sync_platform.config.models import EntityConfig
from sync_platform.engine.hashing import row_hash_expr
from sync_platform.engine.loadable import first_of_each_key, loadable_page
from sync_platform.engine.mapping import record_key_expr
from sync_platform.engine.readback import read_active_rows
from sync_platform.sources.ga4.report import parse_page
from sync_platform.sources.seller_sheet.client import rows_to_records
from sync_platform.warehouse.platform_tables import (
    sync_alerts,
    sync_gaps,
    sync_quarantine,
    webhook_inbox,
)

GA4_PROPERTY = "123456789"
MAX_KEYS_SHOWN = 10


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems

    def fail(self, text: str) -> None:
        self.problems.append(text)


def _shown(keys) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - MAX_KEYS_SHOWN} more)" if len(keys) > MAX_KEYS_SHOWN else ""
    return ", ".join(map(str, keys[:MAX_KEYS_SHOWN])) + more


def _source_records(
    control: httpx.Client, source: str, entity: EntityConfig
) -> list[dict[str, Any]]:
    """The source's final state of one entity, as its API serves it (no fault)."""
    if source == "dealer_feed":
        kind = "stock" if entity.name == "dealer_stock" else "leads"
        return control.get(f"/_sim/dealer/{kind}").json()["items"]
    if source == "legacy_erp":
        name = entity.endpoint.rsplit("/", 1)[-1]
        response = control.get(f"/_sim/erp/records/{name}")
        response.raise_for_status()
        return json.loads(response.text)["items"]  # Latin-1 declared: decoded as served
    if source == "seller_sheet":
        rows = control.get("/_sim/sheets/rows").json()["rows"]
        return rows_to_records(rows, first_row=1, first_column=1, where="the soak's sheet")
    if source == "ga4":
        start = entity.partition_start or date(2026, 1, 1)
        end = datetime.now(UTC).date() - timedelta(days=1)
        body = {
            "dateRanges": [{"startDate": start.isoformat(), "endDate": end.isoformat()}],
            "dimensions": [{"name": name} for name in entity.options["dimensions"]],
            "metrics": [{"name": name} for name in entity.options["metrics"]],
        }
        response = control.post(f"/_sim/ga4/properties/{GA4_PROPERTY}:peekReport", json=body)
        response.raise_for_status()

        def fail(problem: str):
            raise AssertionError(f"peekReport of {entity.name}: {problem}")

        return parse_page(response.json(), fail).rows
    raise ValueError(f"no state dump for source {source}")


def expected_frame(records: list[dict[str, Any]], entity: EntityConfig) -> pl.DataFrame:
    """key and hash of the rows the platform must hold for these source records, by the
    rule a sync loads with (engine/loadable.py): invalid rows and later copies of a key left
    out."""
    frame, _repeated = first_of_each_key(loadable_page(records, entity).frame, entity)
    return _keyed(frame, entity)


def _keyed(frame: pl.DataFrame, entity: EntityConfig) -> pl.DataFrame:
    return frame.select(
        record_key_expr(entity.key).alias("key"),
        row_hash_expr(list(entity.fields)).alias("hash"),
    )


def compare_entities(
    control: httpx.Client, engine: sa.Engine, planted: Planted, verdict: Verdict
) -> None:
    compared = 0
    for source in all_source_configs():
        if source.source == "n8n_events":
            continue  # judged by the inbox (compare_inbox)
        for entity in source.entities.values():
            expected = expected_frame(_source_records(control, source.source, entity), entity)
            if entity.name == "dealer_stock":  # the planted lost vehicle is expected lost
                expected = expected.filter(pl.col("key") != planted.lost_vehicle)
            with engine.connect() as connection:
                actual = _keyed(read_active_rows(connection, entity), entity)
            missing = expected.join(actual, on="key", how="anti")
            extra = actual.join(expected, on="key", how="anti")
            stale = expected.join(actual, on="key").filter(pl.col("hash") != pl.col("hash_right"))
            duplicated = actual.group_by("key").len().filter(pl.col("len") > 1)
            compared += expected.height
            for what, frame in (
                ("missing", missing),
                ("extra", extra),
                ("stale", stale),
                ("duplicated", duplicated),
            ):
                if frame.height:
                    verdict.fail(
                        f"{entity.name}: {frame.height} {what} row(s): "
                        f"{_shown(frame.get_column('key').to_list())}"
                    )
            verdict.figures.setdefault("rows_by_entity", {})[entity.name] = expected.height
    verdict.figures["rows_compared"] = compared


def compare_inbox(engine: sa.Engine, ledger: Ledger, planted: Planted, verdict: Verdict) -> None:
    """Every execution sent is in the inbox exactly once and processed (the planted lost one
    excepted: its payload cannot be recovered)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                webhook_inbox.c.workflow_key, webhook_inbox.c.execution_id, webhook_inbox.c.status
            )
        ).all()
    by_execution: dict[tuple[str, str], list[str]] = {}
    for workflow, execution, status in rows:
        by_execution.setdefault((workflow, execution), []).append(status)
    sent = {(w, e) for w, executions in ledger.executions.items() for e in executions}
    lost = [pair for pair in sent if pair not in by_execution]
    twice = [pair for pair, statuses in by_execution.items() if len(statuses) > 1]
    unprocessed = [
        pair for pair, statuses in by_execution.items() if any(s != "processed" for s in statuses)
    ]
    unknown = [
        pair for pair in by_execution if pair not in sent and pair[1] != planted.lost_execution
    ]
    for what, pairs in (
        ("never reached the inbox", lost),
        ("are in the inbox more than once", twice),
        ("are not processed", unprocessed),
        ("were never sent", unknown),
    ):
        if pairs:
            verdict.fail(f"webhooks: {len(pairs)} execution(s) {what}: {_shown(pairs)}")
    if ("order_update", planted.lost_execution) in by_execution:
        verdict.fail(f"webhooks: the planted lost delivery {planted.lost_execution} arrived")
    verdict.figures["webhook_executions"] = len(sent)


def check_planted(engine: sa.Engine, planted: Planted, verdict: Verdict) -> None:
    """Each planted fault ended where it must: quarantined, lost, alerted."""
    with engine.connect() as connection:
        quarantined = set(
            connection.execute(
                sa.select(sync_quarantine.c.record_key).where(
                    sync_quarantine.c.entity == "dealer_stock",
                    sync_quarantine.c.resolved_at.is_(None),
                )
            ).scalars()
        )
        gaps = connection.execute(
            sa.select(sync_gaps.c.entity, sync_gaps.c.record_key, sync_gaps.c.status).where(
                sync_gaps.c.status != "resolved"
            )
        ).all()
        alerts = connection.execute(
            sa.select(sync_alerts.c.dedup_key, sync_alerts.c.status, sync_alerts.c.message)
        ).all()
    if planted.invalid_vehicle not in quarantined:
        verdict.fail(f"the invalid vehicle {planted.invalid_vehicle} is not in quarantine")
    expected_gaps = {
        ("dealer_stock", planted.lost_vehicle, "unrecoverable"),
        ("order_update", planted.lost_execution, "unrecoverable"),
    }
    if set(gaps) != expected_gaps:
        verdict.fail(f"unresolved gaps: {sorted(gaps)}; expected exactly {expected_gaps}")
    # A breaker the injected faults opened is a true alert (the source did fail that often
    # in a row), as long as it closed once the faults stopped.
    breakers = {
        k for k, status, _ in alerts if k.startswith("source_down:") and status == "resolved"
    }
    raised = {key for key, _status, _message in alerts} - breakers
    verdict.figures["source_down_alerts"] = len(breakers)
    if unexplained := raised - EXPLAINED_ALERTS:
        verdict.fail(f"false alerts: {_shown(unexplained)}")
    if unraised := EXPLAINED_ALERTS - raised:
        verdict.fail(f"planted faults never alerted: {_shown(unraised)}")
    messages = {key: message for key, _status, message in alerts}
    if planted.lost_vehicle not in messages.get("unrecovered_gap:dealer_feed:dealer_stock", ""):
        verdict.fail(f"the unrecovered-gap alert does not name {planted.lost_vehicle}")
    lost_alert = messages.get("webhook_delivery_lost:order_update", "")
    if planted.lost_execution not in lost_alert:
        verdict.fail(f"the lost-delivery alert does not name execution {planted.lost_execution}")
    verdict.figures["alerts_raised"] = len(raised)
    verdict.figures["false_alerts"] = len(raised - EXPLAINED_ALERTS)


def check_dagster(instance: dg.DagsterInstance, verdict: Verdict) -> None:
    """No tick errored; every failed run was followed by a successful run of the same work
    (a retry, the next tick, a resync); nothing is left running."""
    tick_counts = {"ticks": 0, "tick_failures": 0}
    for state in instance.all_instigator_state():
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100_000)
        tick_counts["ticks"] += len(ticks)
        for tick in ticks:
            if tick.status.value == "FAILURE":
                tick_counts["tick_failures"] += 1
                error = tick.error.message.strip().splitlines()[-1] if tick.error else ""
                verdict.fail(f"tick of {state.instigator_name} failed: {error[:300]}")
    verdict.figures |= tick_counts
    records = instance.get_run_records()
    runs = [record.dagster_run for record in records]
    created = {record.dagster_run.run_id: record.create_timestamp for record in records}
    verdict.figures["runs"] = len(runs)
    failed = [run for run in runs if run.status == dg.DagsterRunStatus.FAILURE]
    verdict.figures["runs_failed"] = len(failed)
    succeeded = [run for run in runs if run.status == dg.DagsterRunStatus.SUCCESS]
    unhealed = []
    for run in failed:
        if not any(
            created[other.run_id] > created[run.run_id] and _same_work(run, other)
            for other in succeeded
        ):
            unhealed.append(f"{run.job_name} {run.run_id[:8]}")
    if unhealed:
        verdict.fail(f"failed runs nothing healed: {_shown(unhealed)}")
    verdict.figures["runs_failed_unhealed"] = len(unhealed)
    unfinished = [run for run in runs if run.status == dg.DagsterRunStatus.STARTED]
    if unfinished:
        verdict.fail(f"runs still going at the end: {_shown(r.job_name for r in unfinished)}")


def _same_work(failed: dg.DagsterRun, other: dg.DagsterRun) -> bool:
    """`other` did (part of) what `failed` was to do: an asset in common, or the same job."""
    if failed.asset_selection and other.asset_selection:
        return bool(failed.asset_selection & other.asset_selection)
    return failed.job_name == other.job_name
