"""Marts: tables the business reads, built from synced entities (migration 0004 on).

Kept apart from the platform tables because they are products, not bookkeeping; they share
the platform's MetaData so migrations and the DDL file cover them.
"""

from __future__ import annotations

import sqlalchemy as sa

from sync_platform.warehouse.platform_tables import Timestamp, metadata

mart_daily_kpis = sa.Table(
    "mart_daily_kpis",
    metadata,
    sa.Column("date", sa.Date, primary_key=True),
    # Whole-property figures, from the day-grain GA4 report (users and rates are not additive).
    sa.Column("sessions", sa.BigInteger, nullable=False),
    sa.Column("total_users", sa.BigInteger, nullable=False),
    sa.Column("new_users", sa.BigInteger),
    sa.Column("engagement_rate", sa.Double),
    sa.Column("key_events", sa.BigInteger),
    # Sessions are additive: these are sums over the traffic report's rows of that day.
    sa.Column("organic_sessions", sa.BigInteger, nullable=False),
    sa.Column("paid_sessions", sa.BigInteger, nullable=False),
    sa.Column("leads_created", sa.BigInteger, nullable=False),
    sa.Column("leads_per_1000_sessions", sa.Double),
    sa.Column("refreshed_at", Timestamp(), nullable=False),
)
