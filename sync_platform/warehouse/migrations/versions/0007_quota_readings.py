"""The last quota reading of each rate-limited subject (a GA4 property's `propertyQuota`),
shared by every step and run, so the floor is honoured across reports and runs; and each
sync's source fields that were missing or unmapped (schema drift, new fields).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(
            sa.Column("source_fields", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"))
        )
    op.create_table(
        "sync_quota_readings",
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("subject", sa.String(200), primary_key=True),
        sa.Column(
            "reading", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sync_quota_readings")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("source_fields")
