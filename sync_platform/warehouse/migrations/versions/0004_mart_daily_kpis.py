"""Mart: daily KPIs joining GA4 traffic with dealer leads.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mart_daily_kpis",
        sa.Column("date", sa.Date, primary_key=True),
        sa.Column("sessions", sa.BigInteger, nullable=False),
        sa.Column("total_users", sa.BigInteger, nullable=False),
        sa.Column("new_users", sa.BigInteger),
        sa.Column("engagement_rate", sa.Double),
        sa.Column("key_events", sa.BigInteger),
        sa.Column("organic_sessions", sa.BigInteger, nullable=False),
        sa.Column("paid_sessions", sa.BigInteger, nullable=False),
        sa.Column("leads_created", sa.BigInteger, nullable=False),
        sa.Column("leads_per_1000_sessions", sa.Double),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mart_daily_kpis")
