"""Checks of the seller list: the generic ones and the cross-table rule that a seller with
property data has a property record.

The two tables are synced from separate reads of the sheet, so for a moment after a seller
is added (or a row is missing from one read) one can hold them and the other not yet: unless
a missing seller's property row is quarantined (refused until someone fixes the sheet), a
failure is marked healing (the next sync brings the tables in step) and raises no alert. A
held property row is healing too: it is released once its seller is in the warehouse."""

import dagster as dg
import sqlalchemy as sa

from sync_platform.defs.seller_sheet.assets import SELLER_SHEET
from sync_platform.orchestration.checks import entity_checks
from sync_platform.orchestration.tags import HEALING_METADATA
from sync_platform.warehouse.connection import READ_ONLY

MAX_SHOWN = 25
SELLERS_WITHOUT_PROPERTY = sa.text(
    """
    SELECT s.seller_number FROM sheet_sellers s
    WHERE s._deleted_at IS NULL AND s.property_address IS NOT NULL
      AND NOT EXISTS (
        SELECT 1 FROM sheet_seller_properties p
        WHERE p.seller_number = s.seller_number AND p._deleted_at IS NULL)
    ORDER BY s.seller_number
    """
)
PROPERTY_ROWS_REFUSED = sa.text(
    """
    SELECT count(*) FROM sync_quarantine
    WHERE entity = 'sheet_seller_properties' AND resolved_at IS NULL
      AND record_key IN :sellers
    """
).bindparams(sa.bindparam("sellers", expanding=True))

seller_sheet_checks = entity_checks(SELLER_SHEET)


@dg.asset_check(
    asset=dg.AssetKey("sheet_seller_properties"),
    name="property_records_exist",
    additional_deps=[dg.AssetKey("sheet_sellers")],
    required_resource_keys={"warehouse"},
    description="every seller with property data in the sheet has a property record",
)
def property_records_exist(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    engine = context.resources.warehouse.ready_engine()
    with engine.connect().execution_options(**READ_ONLY) as connection, connection.begin():
        missing = list(connection.execute(SELLERS_WITHOUT_PROPERTY).scalars())
        refused = (
            connection.execute(PROPERTY_ROWS_REFUSED, {"sellers": missing}).scalar()
            if missing
            else 0
        )
    return dg.AssetCheckResult(
        passed=not missing,
        description=(
            None
            if not missing
            else f"{len(missing)} seller(s) have property data but no property record; "
            "their property rows are quarantined or held (see sync_quarantine / "
            "sync_held_records)"
        ),
        metadata={
            "sellers_without_property_record": len(missing),
            "seller_numbers": ", ".join(missing[:MAX_SHOWN]),
            HEALING_METADATA: bool(missing) and not refused,
        },
    )
