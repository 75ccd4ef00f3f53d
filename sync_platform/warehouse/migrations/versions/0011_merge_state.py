"""The packed merge state of large entity tables, and the trigger function that makes it
stale when anything but the merge keeping it writes the table (warehouse/merge_state.py).
The per-table triggers come with the entity tables (schema.ensure_entity_table).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The function as this revision created it (merge_state.FORGET_FUNCTION may move on).
FORGET_FUNCTION = """CREATE OR REPLACE FUNCTION sync_merge_state_forget() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    -- Any write but the state-keeping merge's own makes the packed merge state stale.
    IF coalesce(current_setting('sync_platform.merge_state', true), '') <> TG_TABLE_NAME THEN
        UPDATE sync_merge_state SET state = NULL, generation = generation + 1
        WHERE table_name = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END $$"""


def upgrade() -> None:
    op.create_table(
        "sync_merge_state",
        sa.Column("table_name", sa.String(100), primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("relfilenode", sa.BigInteger),
        sa.Column("layout", sa.String(500)),
        sa.Column("row_count", sa.BigInteger),
        sa.Column("state", sa.LargeBinary),
        sa.Column("stored_at", sa.DateTime(timezone=True)),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FORGET_FUNCTION)
        # The state is compressed already: pglz would only spend time failing to shrink it.
        op.execute("ALTER TABLE sync_merge_state ALTER COLUMN state SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS sync_merge_state_forget() CASCADE")
    op.drop_table("sync_merge_state")
