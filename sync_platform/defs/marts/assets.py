"""`mart_daily_kpis`: one row per day joining GA4 traffic with the dealer's new leads.

Additive metrics (sessions) may be summed across a report's rows; non-additive ones
(users, engagement rate) are never summed: they come from `ga4_daily_totals`, the report
requested at day grain. `test_marts.py` holds the mart to that.
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import sqlalchemy as sa

from sync_platform.config import cached_source_config
from sync_platform.defs.ga4.assets import GA4, GA4_PARTITIONS
from sync_platform.engine.readback import read_active_rows
from sync_platform.orchestration.sync_asset import table_column_schema
from sync_platform.orchestration.tags import LAYER_TAG
from sync_platform.warehouse import bulk
from sync_platform.warehouse.mart_tables import mart_daily_kpis

ORGANIC = ["organic"]
PAID = ["cpc", "ppc", "paid", "paidsearch", "display"]
LEADS = cached_source_config("dealer_feed").entities["dealer_leads"]


def daily_kpis(connection: sa.Connection, first: date, last: date, now: datetime) -> pl.DataFrame:
    days = {"date": (first, last)}
    totals = read_active_rows(connection, GA4.entities["ga4_daily_totals"], days)
    traffic = read_active_rows(connection, GA4.entities["ga4_daily_traffic"], days)
    by_medium = traffic.group_by("date").agg(
        pl.col("sessions")
        .filter(pl.col("session_medium").is_in(ORGANIC))
        .sum()
        .alias("organic_sessions"),
        pl.col("sessions")
        .filter(pl.col("session_medium").is_in(PAID))
        .sum()
        .alias("paid_sessions"),
    )
    leads = (
        read_active_rows(connection, LEADS)
        .select(pl.col("created_at").dt.date().alias("date"))
        .filter(pl.col("date").is_between(first, last))
        .group_by("date")
        .agg(pl.len().cast(pl.Int64).alias("leads_created"))
    )
    return (
        totals.select(
            "date", "sessions", "total_users", "new_users", "engagement_rate", "key_events"
        )
        .join(by_medium, on="date", how="left")
        .join(leads, on="date", how="left")
        .with_columns(
            pl.col("organic_sessions", "paid_sessions", "leads_created").fill_null(0),
        )
        .with_columns(
            pl.when(pl.col("sessions") > 0)
            .then(pl.col("leads_created") * 1000 / pl.col("sessions"))
            .alias("leads_per_1000_sessions"),
            pl.lit(now).alias("refreshed_at"),
        )
        .sort("date")
    )


@dg.asset(
    key="mart_daily_kpis",
    group_name="marts",
    description="Daily KPIs: GA4 sessions and users next to new dealer leads.",
    deps=[
        dg.AssetKey("ga4_daily_totals"),
        dg.AssetKey("ga4_daily_traffic"),
        dg.AssetKey("dealer_leads"),
    ],
    partitions_def=GA4_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=dg.AutomationCondition.eager()
    & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    required_resource_keys={"warehouse"},
    kinds={"sql", "polars"},
    tags={LAYER_TAG: "mart"},
    # who answers for the KPIs: the owners of the GA4 reports they are built on
    owners=GA4.owners or None,
    metadata={
        "dagster/table_name": mart_daily_kpis.name,
        "dagster/column_schema": table_column_schema(mart_daily_kpis),
    },
)
def mart_daily_kpis_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    keys = context.partition_key_range
    first, last = date.fromisoformat(keys.start), date.fromisoformat(keys.end)
    engine = context.resources.warehouse.ready_engine()
    with engine.begin() as connection:
        rows = daily_kpis(connection, first, last, datetime.now(UTC))
        connection.execute(
            sa.delete(mart_daily_kpis).where(mart_daily_kpis.c.date.between(first, last))
        )
        bulk.insert_frame(connection, mart_daily_kpis.name, rows)
    missing = (last - first + timedelta(days=1)).days - rows.height
    return dg.MaterializeResult(
        metadata={
            "days": rows.height,
            "days_without_ga4_totals": missing,
            "sessions": int(rows.get_column("sessions").sum() or 0),
            "leads_created": int(rows.get_column("leads_created").sum() or 0),
            "dagster/row_count": rows.height,
        }
    )
