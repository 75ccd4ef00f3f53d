"""`dealer_reconciliation`: the dealer system's stock and leads compared with the warehouse,
weekly and on demand, and `dealer_reconciliation_resolve`, the job a person fills in the
launchpad to act on what it found (docs/reconciliation.md)."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Literal

import dagster as dg
from pydantic import Field

from sync_platform import settings
from sync_platform.alerting.store import raise_alert, resolve_alerts
from sync_platform.defs.dealer_feed.assets import DEALER_FEED
from sync_platform.defs.dealer_feed.resources import DealerFeedResource
from sync_platform.engine.severity import KINDS, RANK
from sync_platform.orchestration.automation import source_job, utc_schedule
from sync_platform.orchestration.configuration import REQUIRED_ENV_METADATA
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.tags import ALERTED_BY_METADATA, SOURCE_TAG, trigger_of
from sync_platform.reconcile import report, store
from sync_platform.reconcile.resolve import Resolver
from sync_platform.reconcile.run import reconcile_source, reconciled_entities
from sync_platform.reconcile.store import ALERT_TYPE

RECONCILIATION = "dealer_reconciliation"
NO_HIGH_SEVERITY = "no_high_severity_discrepancies"
ALERT_KEY = store.alert_key(DEALER_FEED.source)
TOP_SHOWN = 20


def _top_table(rows: list[dict]) -> str:
    """The most severe open discrepancies as a markdown table."""
    rows = sorted(rows, key=lambda r: (-RANK[r["severity"]], KINDS.index(r["kind"])))
    lines = ["| id | entity | key | kind | severity | fields |", "|---|---|---|---|---|---|"]
    for row in rows[:TOP_SHOWN]:
        fields = ", ".join(row["fields"] or [])
        lines.append(
            f"| {row['id']} | {row['entity']} | `{row['record_key']}` | {row['kind']} | "
            f"{row['severity']} | {fields} |"
        )
    if len(rows) > TOP_SHOWN:
        lines.append(f"\n… and {len(rows) - TOP_SHOWN} more: `sync-platform reconcile list`")
    return "\n".join(lines) if rows else "No open discrepancies."


def _alert(engine, open_rows: list[dict], new: int) -> None:
    """Scheduled reconciliations alert while anything is open (notified again when new
    differences join), and close the alert once nothing is."""
    with engine.begin() as connection:
        if not open_rows:
            resolve_alerts(connection, ALERT_KEY)
            return
        levels = Counter(row["severity"] for row in open_rows)
        counts = ", ".join(f"{levels[s]} {s}" for s in ("high", "medium", "low") if levels[s])
        raise_alert(
            connection,
            severity="high" if levels["high"] else "warning",
            type=ALERT_TYPE,
            message=f"{DEALER_FEED.source}: {len(open_rows)} open difference(s) between the "
            f"dealer system and the warehouse ({counts}); review them with "
            "`sync-platform reconcile list` (docs/reconciliation.md)",
            dedup_key=ALERT_KEY,
            details={"open": len(open_rows), "by_severity": dict(levels), "new": new},
            notify=new > 0,
        )


@dg.asset(
    name=RECONCILIATION,
    # Its own group: the source's sync job selects the source's group.
    group_name="reconciliation",
    description="Every difference between the dealer system's stock and leads and the "
    "warehouse: missing, extra, field values that differ, lead status mismatches, each with "
    "a severity from dealer_feed.yaml. Resolve them with `sync-platform reconcile` or the "
    "dealer_reconciliation_resolve job.",
    deps=[entity.name for entity in reconciled_entities(DEALER_FEED)],
    kinds={"python"},
    tags={SOURCE_TAG: DEALER_FEED.source},
    owners=["team:dealer-admin"],
    metadata={REQUIRED_ENV_METADATA: ",".join(DealerFeedResource.required_env)},
    check_specs=[
        dg.AssetCheckSpec(
            NO_HIGH_SEVERITY,
            asset=RECONCILIATION,
            description="no open high-severity discrepancy (an active vehicle or lead missing "
            "from or extra in the warehouse, or a high field). Failing means the warehouse "
            "and the dealer system disagree on something that matters: see the top "
            "discrepancies and resolve them (docs/reconciliation.md).",
        )
    ],
)
def dealer_reconciliation(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, dealer_feed: DealerFeedResource
) -> dg.MaterializeResult:
    engine = warehouse.ready_engine()
    trigger = trigger_of(context.run.tags)
    run = reconcile_source(
        engine,
        DEALER_FEED,
        lambda entity: dealer_feed.entity_source(entity, None),
        trigger=trigger,
        dagster_run_id=context.run.run_id,
    )
    with engine.connect() as connection:
        open_rows = store.select_discrepancies(
            connection, store.Selection(source=DEALER_FEED.source)
        )
    new = sum(len(recorded.opened) for recorded in run.recorded.values())
    if trigger == "scheduled":
        _alert(engine, open_rows, new)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    paths = report.write_reports(
        open_rows, settings.platform_home() / "reports" / "reconciliation", f"dealer-{stamp}"
    )
    levels = Counter(row["severity"] for row in open_rows)
    kinds = Counter(row["kind"] for row in open_rows)
    metadata: dict[str, object] = {
        "reconciliation_run_id": run.run_id,
        "open_high": levels["high"],
        "open_medium": levels["medium"],
        "open_low": levels["low"],
        **{f"open_{kind}": kinds[kind] for kind in KINDS},
        "new": new,
        "top_discrepancies": dg.MetadataValue.md(_top_table(open_rows)),
        **{f"report_{fmt}": dg.MetadataValue.path(str(path)) for fmt, path in paths.items()},
    }
    for name, figures in run.summary().items():
        for figure in ("source_rows", "warehouse_rows", "pending", "unreadable", "ignored"):
            metadata[f"{name}/{figure}"] = figures[figure]
    context.log.info(f"{len(open_rows)} open discrepancies ({new} new); report: {paths['html']}")
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=NO_HIGH_SEVERITY,
                passed=levels["high"] == 0,
                severity=dg.AssetCheckSeverity.WARN,
                description=None
                if levels["high"] == 0
                else f"{levels['high']} high-severity discrepancies are open: resolve them "
                "with `sync-platform reconcile list --severity high`",
                # its own alert closes when the discrepancies are resolved, by CLI or job
                metadata={"open_high": levels["high"], ALERTED_BY_METADATA: ALERT_TYPE},
            )
        ],
    )


dealer_reconciliation_job = source_job(
    "dealer_reconciliation_job",
    dg.AssetSelection.assets(RECONCILIATION),
    source=DEALER_FEED.source,
    description="Compare the dealer system with the warehouse and record every difference.",
)

dealer_reconciliation_weekly = utc_schedule(
    "dealer_reconciliation_weekly",
    dealer_reconciliation_job,
    "0 6 * * 1",
    requires=DealerFeedResource.required_env,
    description="Mondays 06:00 UTC; alerts while differences are open.",
)


class ResolveConfig(dg.Config):
    """What to do with which discrepancies (the same choices as `sync-platform reconcile
    resolve`). Give at least one filter: ids, keys, kinds, severities or fields."""

    action: Literal["take_source", "keep_local", "ignore", "merge"] = Field(
        description="take_source: resync from the dealer system; keep_local: keep the "
        "warehouse's version (written back to the dealer system); ignore: quiet until "
        "ignore_days pass; merge: per field, see choices"
    )
    ids: list[int] = Field(default=[], description="discrepancy ids (sync-platform reconcile list)")
    keys: list[str] = Field(default=[], description="record keys, e.g. STK000123")
    entity: str | None = Field(default=None, description="dealer_stock or dealer_leads")
    kinds: list[str] = Field(default=[], description="missing, extra, field_diff, status_mismatch")
    severities: list[str] = Field(default=[], description="high, medium, low")
    fields: list[str] = Field(default=[], description="records where any of these fields differ")
    reason: str = Field(default="", description="ignore: why (kept in the audit)")
    ignore_days: int = Field(default=30, ge=1, description="ignore: quiet for this many days")
    choices: dict[str, str] = Field(
        default={}, description='merge: field → "source" or "local" (unnamed fields: local)'
    )
    preview: bool = Field(default=True, description="merge: show the result, write nothing")


@dg.op(
    description="Apply a resolution action to the chosen discrepancies; who did it is the "
    "run's `sync_platform/requested_by` tag, else the Dagster run.",
    tags={SOURCE_TAG: DEALER_FEED.source},
)
def resolve_discrepancies(
    context: dg.OpExecutionContext,
    config: ResolveConfig,
    warehouse: WarehouseResource,
    dealer_feed: DealerFeedResource,
) -> dg.Output[None]:
    actor = context.run.tags.get("sync_platform/requested_by") or f"dagster run {context.run_id}"
    resolver = Resolver(
        warehouse.ready_engine(),
        DEALER_FEED,
        lambda entity: dealer_feed.entity_source(entity, None),
        actor=actor,
        dagster_run_id=context.run_id,
    )
    selection = store.Selection(
        entity=config.entity,
        kinds=config.kinds,
        severities=config.severities,
        fields=config.fields,
        keys=config.keys,
        ids=config.ids,
    )
    if config.action == "ignore":
        until = datetime.now(UTC) + timedelta(days=config.ignore_days)
        outcome = resolver.ignore(selection, reason=config.reason, until=until)
    elif config.action == "merge":
        outcome = resolver.merge(selection, dict(config.choices), preview=config.preview)
    else:
        outcome = getattr(resolver, config.action)(selection)
    for key, why in outcome.refused.items():
        context.log.warning(f"{key}: not done: {why}")
    lines = [f"| `{p['record_key']}` | {', '.join(p['changes'])} |" for p in outcome.preview]
    metadata: dict[str, object] = {
        "action": config.action,
        "done": len(outcome.done),
        "refused": len(outcome.refused),
        "keys": ", ".join(outcome.done[:50]),
    }
    if outcome.preview:
        metadata["preview"] = dg.MetadataValue.md(
            "| key | fields that would change |\n|---|---|\n" + "\n".join(lines)
        )
    return dg.Output(None, metadata=metadata)


@dg.job(
    name="dealer_reconciliation_resolve",
    description="Resolve dealer discrepancies: fill the action and the filters in the "
    "launchpad (docs/reconciliation.md).",
    tags={SOURCE_TAG: DEALER_FEED.source},
)
def dealer_reconciliation_resolve() -> None:
    resolve_discrepancies()
