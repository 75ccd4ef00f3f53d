"""Google Sheets API v4 (`spreadsheets.values.get`): a sheet's rows keyed by its header."""

from sync_platform.sources.seller_sheet.client import (
    DEFAULT_BASE_URL,
    SHEET_ROW,
    SheetsClient,
    read_limiter,
)

__all__ = ["DEFAULT_BASE_URL", "SHEET_ROW", "SheetsClient", "read_limiter"]
