"""Google Sheets API v4 `spreadsheets.values.get` over the seller list, seeded and
deterministic, with the API's own quirks and errors.

Rows come back as Google returns them: ragged (trailing empty cells dropped), entirely empty
rows inside the range kept as `[]`, trailing empty rows omitted; errors in Google's shape
`{"error": {"code", "message", "status"}}`. Reads are limited per user (per bearer token)
as Google does (60 a minute by default; both numbers settable so tests stay fast), answering
429 `RESOURCE_EXHAUSTED` beyond it.

A read whose columns are just the seller-number column is a key listing: `drop_keys`
(`times` > 0) spares it, so a row can vanish from one full read while the listing still
shows it, which is how the AA12679 gap looked. Reference: docs/sources/sheets_api.md.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import deque
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sync_platform_simulator.faults import FaultInjector, fault_injector
from sync_platform_simulator.google_oauth import GoogleApiError, require_bearer

DEFAULT_TOKEN = "sim-sheets-token"
DEFAULT_SPREADSHEET_ID = "sim-seller-sheet"
DEFAULT_SHEET = "Sellers"
INCIDENT_SELLER = "AA12679"  # the seller missing from the warehouse in the original incident
KEY_COLUMN = "Seller Number"
HEADER = [
    KEY_COLUMN, "Name", "Inquiry Date", "Email", "Phone", "Property Address", "Property Type",
    "Asking Price",
]  # fmt: skip
GRID_ROWS = 1000  # a new Google sheet's grid
GRID_COLUMNS = 26
FIRST_INQUIRY = date(2024, 1, 2)
DATE_FORMAT = "%d/%m/%Y"  # how an en-AU sheet formats a date cell (FORMATTED_VALUE)
FIRST_NAMES = ["Olivia", "Jack", "Charlotte", "William", "Amelia", "Thomas", "Isla", "Lucas"]
LAST_NAMES = ["Taylor", "Nguyen", "Williams", "Martin", "Anderson", "Lee", "Wright", "Khan"]
STREETS = ["George St", "Church St", "Victoria Rd", "Pennant Hills Rd", "Marsden St"]
SUBURBS = ["Parramatta NSW 2150", "Penrith NSW 2750", "Liverpool NSW 2170", "Ryde NSW 2112"]
PROPERTY_TYPES = ["House", "Unit", "Townhouse", "Land", "Acreage"]
A1_CELLS = re.compile(r"^\$?([A-Z]*)\$?(\d*)(?::\$?([A-Z]*)\$?(\d*))?$")
SIMPLE_SHEET_NAME = re.compile(r"^[A-Za-z0-9_]+$")
READ_SCOPES = frozenset(
    "https://www.googleapis.com/auth/" + scope
    for scope in ("spreadsheets.readonly", "spreadsheets", "drive.readonly", "drive", "drive.file")
)

Row = list[str]
Problem = Literal[
    "bad_seller_number",
    "missing_seller_number",
    "missing_name",
    "missing_inquiry_date",
    "bad_inquiry_date",
    "bad_email",
    "property_without_address",
]


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def column_index(letters: str) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


def quoted_sheet(name: str) -> str:
    return name if SIMPLE_SHEET_NAME.match(name) else "'" + name.replace("'", "''") + "'"


def _unquoted(sheet: str) -> str:
    if len(sheet) > 1 and sheet.startswith("'") and sheet.endswith("'"):
        return sheet[1:-1].replace("''", "'")
    return sheet


def _trimmed(cells: list[str]) -> Row:
    """Google's rendering of a row: trailing empty cells dropped."""
    end = len(cells)
    while end and cells[end - 1] == "":
        end -= 1
    return list(cells[:end])


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


class SheetsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spreadsheet_id: str = DEFAULT_SPREADSHEET_ID
    sheet_name: str = DEFAULT_SHEET
    sellers: int = Field(default=150, ge=0, description=f"{INCIDENT_SELLER} is always one")
    blank_rows: int = Field(default=2, ge=0, description="empty rows between sellers")
    token: str = DEFAULT_TOKEN
    shared: bool = Field(default=True, description="false: every read is 403")
    reads_per_minute: int = Field(default=60, ge=1, description="per user (bearer token)")
    quota_window_seconds: float = Field(default=60.0, gt=0, description="the 'minute'")


class SheetsData:
    """The simulated seller sheet (row 1 is the header), its sharing and the per-user read
    quota. Writes hold one lock, so a read never sees half a change."""

    def __init__(self, seed: int, settings: SheetsSettings | None = None):
        settings = settings or SheetsSettings()
        self.settings = settings.model_copy()
        self.rng = random.Random(f"sheets:{seed}")
        self.lock = threading.RLock()
        self._reads: dict[str, deque[float]] = {}
        self._clock_offset = 0.0
        self.rows: list[Row] = [list(HEADER)]
        numbers = self._seller_numbers(settings.sellers)
        for number, inquiry in zip(numbers, self._inquiry_dates(settings.sellers), strict=True):
            self.rows.append(self._seller(number, inquiry))
        if len(self.rows) > 2:
            for _ in range(settings.blank_rows):
                self.rows.insert(self.rng.randint(2, len(self.rows) - 1), [])

    # -- generating ----------------------------------------------------------------------

    def _seller_numbers(self, count: int) -> list[str]:
        pool = range(12000, 12000 + max(1000, 2 * count))
        numbers = self.rng.sample(pool, count)
        if count and 12679 not in numbers:
            numbers[self.rng.randrange(count)] = 12679
        return [f"AA{number}" for number in sorted(numbers)]

    def _inquiry_dates(self, count: int) -> list[date]:
        day, dates = FIRST_INQUIRY, []
        for _ in range(count):
            day += timedelta(days=self.rng.choice([0, 0, 1, 1, 2, 3]))
            dates.append(day)
        return dates

    def _seller(self, number: str, inquiry: date) -> Row:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        email = f"{first}.{last}{number[2:]}@example.com".lower()
        phone = f"04{self.rng.randint(0, 99):02d} {self.rng.randint(0, 999):03d} "
        phone += f"{self.rng.randint(0, 999):03d}"
        row = [
            number,
            f"{first} {last}",
            inquiry.strftime(DATE_FORMAT),
            email if self.rng.random() > 0.1 else "",
            phone if self.rng.random() > 0.1 else "",
        ]
        has_property = self.rng.random()
        if has_property < 0.85:
            address = f"{self.rng.randint(1, 250)} {self.rng.choice(STREETS)}, "
            row += [address + self.rng.choice(SUBURBS), self.rng.choice(PROPERTY_TYPES)]
            if has_property < 0.75:
                row.append(f"${self.rng.randrange(450_000, 2_500_000, 5_000):,}")
        return _trimmed(row)

    # -- reading -------------------------------------------------------------------------

    @property
    def header(self) -> Row:
        return self.rows[0] if self.rows else []

    def key_column(self) -> int:
        header = self.header
        return header.index(KEY_COLUMN) if KEY_COLUMN in header else 0

    def key_of(self, row: Row) -> str:
        column = self.key_column()
        return row[column] if column < len(row) else ""

    def find(self, seller_number: str) -> int | None:
        """Index in `rows` of the seller's row (not the header), or None."""
        with self.lock:
            for index, row in enumerate(self.rows[1:], start=1):
                if self.key_of(row) == seller_number:
                    return index
            return None

    def parse_range(self, text: str) -> tuple[int, int, int | None, int | None]:
        """(first row, first column, last row, last column): 1-based rows, 0-based columns,
        None for an open end. A range naming another sheet is a 400, as Google answers."""
        sheet, bang, cells = text.rpartition("!")
        if not bang:  # a sheet name alone, or cells on the first (only) sheet
            sheet, cells = text, ""
            if _unquoted(text) != self.settings.sheet_name and A1_CELLS.match(text):
                sheet, cells = self.settings.sheet_name, text
        sheet = _unquoted(sheet)
        match = A1_CELLS.match(cells)
        if sheet != self.settings.sheet_name or match is None:
            raise GoogleApiError(400, "INVALID_ARGUMENT", f"Unable to parse range: {text}")
        c1, r1, c2, r2 = match.groups()
        if match[0] and ":" not in match[0]:  # one cell
            c2, r2 = c1, r1
        first_row = int(r1) if r1 else 1
        first_column = column_index(c1) if c1 else 0
        last_row = int(r2) if r2 else None
        last_column = column_index(c2) if c2 else None
        if first_row < 1 or (last_row is not None and last_row < first_row):
            raise GoogleApiError(400, "INVALID_ARGUMENT", f"Unable to parse range: {text}")
        return first_row, first_column, last_row, last_column

    def read(self, text: str, faults: FaultInjector) -> dict[str, Any]:
        first_row, first_column, last_row, last_column = self.parse_range(text)
        with self.lock:
            rows = [list(row) for row in self.rows]
            key_column = self.key_column()
        if lost := faults.lost_keys():
            rows = [row for row in rows if self.key_of(row) not in lost]
        grid_rows = max(GRID_ROWS, len(rows))
        grid_columns = max(GRID_COLUMNS, *(len(row) for row in rows)) if rows else GRID_COLUMNS
        if first_row > grid_rows or first_column >= grid_columns:
            raise GoogleApiError(
                400,
                "INVALID_ARGUMENT",
                f"Range ({text}) exceeds grid limits. Max rows: {grid_rows}, "
                f"max columns: {grid_columns}",
            )
        end_row = min(last_row or grid_rows, grid_rows)
        end_column = grid_columns - 1 if last_column is None else last_column
        end_column = min(end_column, grid_columns - 1)
        picked = [
            (self.key_of(row), _trimmed(row[first_column : end_column + 1]))
            for row in rows[first_row - 1 : end_row]
        ]
        key_listing = first_column == end_column == key_column
        values = [cells for _, cells in picked] if key_listing else faults.drop_from_page(picked)
        while values and not values[-1]:
            values.pop()
        shown = (
            f"{quoted_sheet(self.settings.sheet_name)}!{column_letter(first_column)}{first_row}"
            f":{column_letter(end_column)}{end_row}"
        )
        body: dict[str, Any] = {"range": shown, "majorDimension": "ROWS"}
        if values:
            body["values"] = values  # Google leaves the field out for an empty range
        return body

    # -- quota ---------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() + self._clock_offset

    def take_read(self, user: str) -> bool:
        """Count one read for `user`; False if the user has used up the window."""
        with self.lock:
            now = self.now()
            reads = self._reads.setdefault(user, deque())
            while reads and reads[0] <= now - self.settings.quota_window_seconds:
                reads.popleft()
            if len(reads) >= self.settings.reads_per_minute:
                return False
            reads.append(now)
            return True

    def set_quota(self, reads_per_minute: int, window_seconds: float) -> None:
        with self.lock:
            self.settings.reads_per_minute = reads_per_minute
            self.settings.quota_window_seconds = window_seconds
            self._reads.clear()

    def advance(self, seconds: float) -> None:
        with self.lock:
            self._clock_offset += seconds

    # -- changing ------------------------------------------------------------------------

    def row_from(self, values: list[Any] | dict[str, Any], seller_number: str) -> Row:
        if isinstance(values, list):
            return [_cell_text(value) for value in values]
        header = self.header
        unknown = sorted(set(values) - set(header))
        if unknown:
            raise HTTPException(status_code=400, detail=f"no column named {', '.join(unknown)}")
        named = {KEY_COLUMN: seller_number} | values
        return _trimmed([_cell_text(named.get(name)) for name in header])

    def put_seller(self, seller_number: str, row: Row) -> int:
        """Replace the seller's row, or append it after the last non-empty row; returns its
        1-based sheet row."""
        with self.lock:
            index = self.find(seller_number)
            if index is None:
                while len(self.rows) > 1 and not any(self.rows[-1]):
                    self.rows.pop()
                self.rows.append(row)
                return len(self.rows)
            self.rows[index] = row
            return index + 1

    def delete_seller(self, seller_number: str) -> bool:
        """Delete the row (rows below move up, as deleting a row in Sheets does)."""
        with self.lock:
            index = self.find(seller_number)
            if index is None:
                return False
            del self.rows[index]
            return True

    def insert_row(self, row_number: int, row: Row) -> None:
        with self.lock:
            while len(self.rows) < row_number - 1:
                self.rows.append([])
            self.rows.insert(row_number - 1, row)

    def set_header(self, header: Row) -> None:
        with self.lock:
            self.rows[0] = header

    def _set(self, row: Row, column: str, value: str) -> None:
        header = self.header
        if column not in header:
            raise HTTPException(status_code=409, detail=f"the header has no {column!r} column")
        index = header.index(column)
        row.extend([""] * (index + 1 - len(row)))
        row[index] = value

    def _get(self, row: Row, column: str) -> str:
        index = self.header.index(column) if column in self.header else len(row)
        return row[index] if index < len(row) else ""

    def make_invalid(self, seller_number: str, problem: Problem) -> tuple[int, Row]:
        """Break one seller's row the way people break sheets; returns (sheet row, cells)."""
        with self.lock:
            index = self.find(seller_number)
            if index is None:
                raise HTTPException(status_code=404, detail=f"no seller {seller_number}")
            row = list(self.rows[index])
            if problem == "bad_seller_number":
                self._set(row, KEY_COLUMN, f"{seller_number[:2]}-{seller_number[2:]}")
            elif problem == "missing_seller_number":
                self._set(row, KEY_COLUMN, "")
            elif problem == "missing_name":
                self._set(row, "Name", "")
            elif problem == "missing_inquiry_date":
                self._set(row, "Inquiry Date", "")
            elif problem == "bad_inquiry_date":
                self._set(row, "Inquiry Date", "31/02/2025")
            elif problem == "bad_email":
                self._set(row, "Email", "not-an-email")
            elif problem == "property_without_address":
                self._set(row, "Property Address", "")
                if not self._get(row, "Property Type"):
                    self._set(row, "Property Type", "House")
                if not self._get(row, "Asking Price"):
                    self._set(row, "Asking Price", "$850,000")
            row = _trimmed(row)
            self.rows[index] = row
            return index + 1, row


# -- the Sheets API ----------------------------------------------------------------------


def sheets_data(request: Request) -> SheetsData:
    """FastAPI dependency: the seller sheet of the simulator serving this request."""
    return request.app.state.simulator.sheets


Sheets = Annotated[SheetsData, Depends(sheets_data)]
Faults = Annotated[FaultInjector, Depends(fault_injector)]


def bearer_user(
    request: Request, sheets: Sheets, authorization: Annotated[str | None, Header()] = None
) -> str:
    """Who is reading (quotas count per user), or the 401/403 Google answers. Accepted: the
    static token, and tokens the simulated OAuth endpoint issued with a Sheets-reading scope
    (their user is the service account)."""
    oauth = getattr(request.app.state.simulator, "google_oauth", None)
    if oauth is None:  # a simulator without the OAuth endpoint: the static token only
        oauth = _NO_ISSUER
    token = require_bearer(
        oauth, authorization, static_token=sheets.settings.token, scopes=READ_SCOPES
    )
    issued = oauth.lookup(token)
    return issued.client_email if issued is not None else token


class _NoIssuer:
    def lookup(self, token: str) -> None:
        return None


_NO_ISSUER = _NoIssuer()
User = Annotated[str, Depends(bearer_user)]
router = APIRouter(prefix="/sheets/v4/spreadsheets")


def quota_exceeded(sheets: SheetsData) -> GoogleApiError:
    error = GoogleApiError(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute "
        "per user' of service 'sheets.googleapis.com' for consumer 'project_number:0'.",
    )
    error.detail["details"] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "service": "sheets.googleapis.com",
                "quota_metric": "sheets.googleapis.com/read_requests",
                "quota_limit": "ReadRequestsPerMinutePerUser",
                "quota_limit_value": str(sheets.settings.reads_per_minute),
            },
        }
    ]
    return error


@router.get("/{spreadsheet_id}/values/{cell_range:path}")
def get_values(
    spreadsheet_id: str,
    cell_range: str,
    sheets: Sheets,
    faults: Faults,
    user: User,
    major_dimension: Annotated[str, Query(alias="majorDimension")] = "ROWS",
    render: Annotated[str, Query(alias="valueRenderOption")] = "FORMATTED_VALUE",
) -> JSONResponse:
    if not sheets.take_read(user):
        raise quota_exceeded(sheets)
    if spreadsheet_id != sheets.settings.spreadsheet_id:
        raise GoogleApiError(404, "NOT_FOUND", "Requested entity was not found.")
    if not sheets.settings.shared:
        raise GoogleApiError(403, "PERMISSION_DENIED", "The caller does not have permission")
    if major_dimension != "ROWS" or render != "FORMATTED_VALUE":
        raise GoogleApiError(
            400,
            "INVALID_ARGUMENT",
            "the simulator serves majorDimension=ROWS and valueRenderOption=FORMATTED_VALUE only",
        )
    return JSONResponse(sheets.read(cell_range, faults))


# -- the sheet's part of the control API -------------------------------------------------


class Invalid(BaseModel):
    model_config = ConfigDict(extra="forbid")

    problem: Problem


class InsertedRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    row: int = Field(ge=1, description="1-based sheet row; rows from here move down")
    values: list[Any] = Field(default_factory=list)


class Sharing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shared: bool


class Quota(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reads_per_minute: int = Field(default=60, ge=1)
    window_seconds: float = Field(default=60.0, gt=0)


class ClockAdvance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advance_seconds: float = Field(ge=0)


control_router = APIRouter(prefix="/_sim/sheets")
RowBody = Annotated[list[Any] | dict[str, Any], Body()]


@control_router.post("/reset")
def reset_sheets(
    request: Request, settings: Annotated[SheetsSettings | None, Body()] = None
) -> dict[str, int]:
    """Regenerate the sheet alone from the simulator seed; quota counts start afresh.
    Faults and other sources are untouched."""
    state = request.app.state.simulator
    settings = settings or SheetsSettings()
    state.sheets = SheetsData(state.seed, settings)
    state.settings.sheets = settings.model_copy()
    return {"rows": len(state.sheets.rows)}


@control_router.get("/rows")
def rows(sheets: Sheets) -> dict[str, list[Row]]:
    """The sheet as stored, row 1 first (cells not trimmed, blank rows as [])."""
    with sheets.lock:
        return {"rows": [list(row) for row in sheets.rows]}


@control_router.put("/sellers/{seller_number}")
def put_seller(seller_number: str, values: RowBody, sheets: Sheets) -> dict[str, Any]:
    row = sheets.row_from(values, seller_number)
    return {"row": sheets.put_seller(seller_number, row), "values": row}


@control_router.delete("/sellers/{seller_number}")
def delete_seller(seller_number: str, sheets: Sheets) -> dict[str, str]:
    if not sheets.delete_seller(seller_number):
        raise HTTPException(status_code=404, detail=f"no seller {seller_number}")
    return {"deleted": seller_number}


@control_router.post("/sellers/{seller_number}/invalid")
def make_invalid(seller_number: str, invalid: Invalid, sheets: Sheets) -> dict[str, Any]:
    row_number, row = sheets.make_invalid(seller_number, invalid.problem)
    return {"row": row_number, "values": row}


@control_router.post("/rows")
def insert_row(inserted: InsertedRow, sheets: Sheets) -> dict[str, Any]:
    row = [_cell_text(value) for value in inserted.values]
    sheets.insert_row(inserted.row, row)
    return {"row": inserted.row, "values": row}


@control_router.put("/header")
def set_header(header: Annotated[list[Any], Body()], sheets: Sheets) -> dict[str, Row]:
    cells = [_cell_text(value) for value in header]
    sheets.set_header(cells)
    return {"header": cells}


@control_router.post("/sharing")
def set_sharing(sharing: Sharing, sheets: Sheets) -> Sharing:
    sheets.settings.shared = sharing.shared
    return sharing


@control_router.post("/quota")
def set_quota(quota: Quota, sheets: Sheets) -> Quota:
    """Set the per-user read limit and its window; counted reads are forgotten."""
    sheets.set_quota(quota.reads_per_minute, quota.window_seconds)
    return quota


@control_router.post("/clock")
def advance_clock(advance: ClockAdvance, sheets: Sheets) -> dict[str, float]:
    """Move the quota clock forward (reads older than the window stop counting)."""
    sheets.advance(advance.advance_seconds)
    return {"advanced_seconds": advance.advance_seconds}
