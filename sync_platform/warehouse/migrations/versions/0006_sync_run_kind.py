"""What each sync read: the whole source (`snapshot`), the changes since its cursor
(`changes`), named keys (`keys`, a gap resync) or one slice such as a GA4 day (`slice`), so
volume checks compare a sync only with syncs of its own kind.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("kind", sa.String(20)))
        batch.create_check_constraint(
            "ck_sync_runs_kind", "kind IN ('snapshot', 'changes', 'keys', 'slice')"
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_constraint("ck_sync_runs_kind", type_="check")
        batch.drop_column("kind")
