"""The rows changed since a packed merge state was last written whole, kept beside it
(warehouse/merge_state.py): a re-sync that changed 1% of a table stores that 1%, not the
whole state again.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sync_merge_state", sa.Column("changes", sa.LargeBinary))
    if op.get_bind().dialect.name == "postgresql":
        # Compressed already, as the state is.
        op.execute("ALTER TABLE sync_merge_state ALTER COLUMN changes SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_column("sync_merge_state", "changes")
