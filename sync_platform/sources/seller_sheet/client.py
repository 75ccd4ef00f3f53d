"""Client for the Google Sheets API v4: a sheet read as rows with `spreadsheets.values.get`.

`GET {base}/v4/spreadsheets/{spreadsheetId}/values/{range}?majorDimension=ROWS
&valueRenderOption=FORMATTED_VALUE` with `Authorization: Bearer <token>` (scope
spreadsheets.readonly) answers `{"range", "majorDimension", "values": [[...], ...]}`.
Reference: docs/sources/sheets_api.md.

The first row of the range is the header. Google sends rows ragged: trailing empty cells are
dropped, an entirely empty row inside the range comes as `[]`, trailing empty rows are left
out (and `values` itself when the range is empty). Each row becomes a dict keyed by the
header: a missing cell is `""`, exactly what Google sends for an empty cell inside a row, so
an empty cell reads the same wherever it sits (declare `null_values: [""]` to load it as
NULL). Entirely empty rows are skipped. `_sheet_row` holds the 1-based sheet row, so a
quarantined row can be found in the sheet; cells beyond the header's width, if any hold
something, are kept as a list under `_extra_cells`.

Quota: 60 read requests a minute per user. The client paces itself with pyrate-limiter
(every HTTP attempt, retries included, waits for a slot in a sliding minute shared by the
clients of one identity in this process) and the HTTP layer retries a 429
`RESOURCE_EXHAUSTED` with exponential backoff long enough to reach the next minute.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import quote

from pyrate_limiter import Duration, Limiter, Rate

from sync_platform.errors import ConfigurationError
from sync_platform.sources import shared_state
from sync_platform.sources.google_auth import SPREADSHEETS_READONLY, AccessTokenProvider, with_token
from sync_platform.sources.http_session import HttpStatusError, RetrySettings, SourceHttpClient

SOURCE = "sheets"
# The environment variables the seller sheet is configured from (defs/seller_sheet/resources.py).
BASE_URL_ENV = "SELLER_SHEET_BASE_URL"
SHEET_ID_ENV = "SELLER_SHEET_ID"
DEFAULT_BASE_URL = "https://sheets.googleapis.com"
READS_PER_MINUTE = 60
SHEET_ROW = "_sheet_row"
EXTRA_CELLS = "_extra_cells"
PAGE_ROWS = 1000  # records handed to the engine at a time (one read fetches them all)
# Backoff 2, 4, 8, 16, 32 s: past a full quota minute before giving up.
SHEETS_RETRY = RetrySettings(attempts=6, wait_initial=2.0, wait_max=32.0, total_seconds=180.0)
A1_START = re.compile(r"^\$?([A-Z]*)\$?(\d*)")
SIMPLE_SHEET_NAME = re.compile(r"^[A-Za-z0-9_]+$")

Records = list[dict[str, Any]]


# -- pacing (Google's per-user read quota) ------------------------------------------------


def read_limiter(identity: str, max_requests: int, period_seconds: float = 60.0) -> Limiter:
    """One limiter per identity (and limit), shared by every client of it, since Google counts
    the quota per user (pyrate-limiter: a sliding window that blocks until a slot is free);
    across processes once the process is bound to a database (sources/shared_state.py)."""
    rate = Rate(max_requests, int(Duration.SECOND * period_seconds))
    return shared_state.rate_limiter(f"sheets-reads:{identity}", rate)


# -- A1 notation and rows ----------------------------------------------------------------


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


def in_sheet(sheet: str, cells: str) -> str:
    """An A1 range on a sheet ("" means the first sheet)."""
    return f"{quoted_sheet(sheet)}!{cells}" if sheet else cells


def range_start(cell_range: str) -> tuple[str, int, int]:
    """(sheet name or "", first row 1-based, first column 0-based) of an A1 range."""
    sheet, bang, cells = cell_range.rpartition("!")
    if not bang:  # cells on the first sheet, or a sheet name alone
        is_cells = A1_START.fullmatch(cell_range.split(":")[0]) is not None
        sheet, cells = ("", cell_range) if is_cells else (cell_range, "")
    if len(sheet) > 1 and sheet.startswith("'") and sheet.endswith("'"):
        sheet = sheet[1:-1].replace("''", "'")
    match = A1_START.match(cells)
    letters, digits = (match[1], match[2]) if match else ("", "")
    return sheet, int(digits) if digits else 1, column_index(letters) if letters else 0


def header_names(header: list[Any], *, first_row: int, first_column: int, where: str) -> list[str]:
    """The header's column names, refusing blank or repeated ones (a row keyed by them would
    lose data)."""
    names = [str(cell).strip() for cell in header]
    if not names:
        raise ConfigurationError(
            f"{where}: the header row (sheet row {first_row}) is empty",
            hint="the range must start at the header row; fix the range or the sheet",
        )
    letters = [column_letter(first_column + index) for index in range(len(names))]
    blank = [letter for letter, name in zip(letters, names, strict=True) if not name]
    if blank:
        raise ConfigurationError(
            f"{where}: the header row (sheet row {first_row}) has no name in column "
            + ", ".join(blank),
            hint="give every column of the header row a name in the sheet",
        )
    seen: dict[str, list[str]] = {}
    for letter, name in zip(letters, names, strict=True):
        seen.setdefault(name, []).append(letter)
    repeated = {name: at for name, at in seen.items() if len(at) > 1}
    if repeated:
        described = "; ".join(
            f"{name!r} in columns {', '.join(at)}" for name, at in repeated.items()
        )
        raise ConfigurationError(
            f"{where}: the header row (sheet row {first_row}) repeats column names: {described}",
            hint="rename the columns in the sheet so every header is unique",
        )
    return names


def rows_to_records(
    values: list[list[Any]], *, first_row: int, first_column: int, where: str
) -> Records:
    """Ragged rows (header first) as dicts keyed by the header, each with its sheet row."""
    if not values:
        raise ConfigurationError(
            f"{where} is empty: no header row",
            hint="check that the range covers the sheet's header and data",
        )
    names = header_names(values[0], first_row=first_row, first_column=first_column, where=where)
    width = len(names)
    records = []
    for offset, cells in enumerate(values[1:], start=1):
        if all(cell == "" for cell in cells):
            continue  # an empty row between sellers: no data, nothing to key
        record: dict[str, Any] = {
            name: cells[index] if index < len(cells) else "" for index, name in enumerate(names)
        }
        extra = cells[width:]
        if any(cell != "" for cell in extra):
            record[EXTRA_CELLS] = list(extra)
        record[SHEET_ROW] = first_row + offset
        records.append(record)
    return records


def _google_message(body: str) -> str:
    try:
        error = json.loads(body).get("error", {})
    except (json.JSONDecodeError, AttributeError):
        return ""
    return error.get("message", "") if isinstance(error, dict) else str(error)


# -- the client --------------------------------------------------------------------------


class SheetsClient:
    """Reads ranges of one spreadsheet. `reads_per_minute=None` turns pacing off (the
    HTTP layer still retries 429s); `limiter` overrides the shared per-identity one."""

    def __init__(
        self,
        spreadsheet_id: str,
        token: AccessTokenProvider,
        *,
        base_url: str = DEFAULT_BASE_URL,
        reads_per_minute: int | None = READS_PER_MINUTE,
        limiter: Limiter | None = None,
        timeout_seconds: float = 30.0,
        retry: RetrySettings | None = None,
    ):
        self.spreadsheet_id = spreadsheet_id
        self.token = token
        if limiter is None and reads_per_minute is not None:
            limiter = read_limiter(token.identity, reads_per_minute)
        self.limiter = limiter
        self.http = SourceHttpClient(
            SOURCE,
            base_url,
            headers={"Accept": "application/json"},
            timeout_seconds=timeout_seconds,
            retry=retry or SHEETS_RETRY,
            # Every attempt that goes out, retries included, first takes a quota slot.
            before_request=(lambda: limiter.try_acquire(SOURCE)) if limiter else None,
        )
        self._headers: dict[str, tuple[str, int, int, list[str]]] = {}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SheetsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def values(self, cell_range: str) -> dict[str, Any]:
        """The raw ValueRange of one A1 range (rows ragged, as Google sends them)."""
        path = (
            f"/v4/spreadsheets/{quote(self.spreadsheet_id, safe='')}"
            f"/values/{quote(cell_range, safe='')}"
        )
        params = {"majorDimension": "ROWS", "valueRenderOption": "FORMATTED_VALUE"}
        try:
            body = with_token(
                self.token,
                lambda headers: self.http.request_json("GET", path, params=params, headers=headers),
            )
        except HttpStatusError as exc:
            self._raise_for(exc, cell_range)
        if not isinstance(body, dict) or not isinstance(body.get("values", []), list):
            raise ConfigurationError(
                f"{SOURCE}: reading {cell_range} did not return a ValueRange",
                hint=f"check {BASE_URL_ENV} (unset means {DEFAULT_BASE_URL})",
            )
        return body

    def _raise_for(self, exc: HttpStatusError, cell_range: str) -> NoReturn:
        said = _google_message(exc.body)
        where = f"spreadsheet {self.spreadsheet_id}, range {cell_range}"
        if exc.status == 403 and "scope" in said.lower():
            raise ConfigurationError(
                f"the access token of {self.token.identity} has no Sheets scope ({said})",
                hint=f"request the scope {SPREADSHEETS_READONLY} for the token",
            ) from None
        if exc.status == 403:
            raise ConfigurationError(
                f"{self.token.identity} may not read {where} (403: {said or 'permission denied'})",
                hint=f"share the sheet with {self.token.identity} (Viewer is enough) and make "
                "sure the Google Sheets API is enabled for its Google Cloud project",
            ) from None
        if exc.status == 404:
            raise ConfigurationError(
                f"Google Sheets found no {where} (404)",
                hint=f"check {SHEET_ID_ENV}: it is the part of the sheet's URL "
                "between /d/ and /edit",
            ) from None
        if exc.status == 401:
            raise ConfigurationError(
                f"Google Sheets refused the access token of {self.token.identity} (401)",
                hint="check the service-account key and that the token has the "
                "spreadsheets.readonly scope",
            ) from None
        if exc.status == 400:
            raise ConfigurationError(
                f"Google Sheets could not read {where} (400: {said or 'bad request'})",
                hint="check the sheet (tab) name and the A1 range in the entity's endpoint; "
                "a renamed tab breaks the range",
            ) from None
        raise exc

    def read_rows(self, cell_range: str) -> Records:
        """The range as records keyed by its header row (see the module docstring)."""
        body = self.values(cell_range)
        sheet, first_row, first_column = range_start(body.get("range") or cell_range)
        values = body.get("values", [])
        where = f"{SOURCE}: spreadsheet {self.spreadsheet_id}, range {cell_range}"
        records = rows_to_records(
            values, first_row=first_row, first_column=first_column, where=where
        )
        names = [str(cell).strip() for cell in values[0]]
        self._headers[cell_range] = (sheet, first_row, first_column, names)
        return records

    def pages(self, cell_range: str) -> Iterator[Records]:
        records = self.read_rows(cell_range)
        for start in range(0, len(records), PAGE_ROWS):
            yield records[start : start + PAGE_ROWS]

    def key_range(self, data_range: str, key_fields: list[str]) -> str:
        """The narrowest range holding the key columns of `data_range`, found by their
        header names (from the last read of `data_range`, else by reading its header row)."""
        if data_range not in self._headers:
            sheet, first_row, first_column = range_start(data_range)
            header = self.values(in_sheet(sheet, f"{first_row}:{first_row}")).get("values")
            names = [str(cell).strip() for cell in (header or [[]])[0][first_column:]]
            self._headers[data_range] = (sheet, first_row, first_column, names)
        sheet, first_row, first_column, names = self._headers[data_range]
        missing = [field for field in key_fields if field not in names]
        if missing:
            raise ConfigurationError(
                f"{SOURCE}: spreadsheet {self.spreadsheet_id}, range {data_range} has no "
                f"column {', '.join(repr(m) for m in missing)} in its header",
                hint="check the key field's `from:` against the sheet's header row",
            )
        positions = [first_column + names.index(field) for field in key_fields]
        cells = f"{column_letter(min(positions))}{first_row}:{column_letter(max(positions))}"
        return in_sheet(sheet, cells)

    def key_records(self, key_range: str, key_fields: list[str]) -> Records:
        """The key columns alone, read independently of the full rows: one record per row
        that has a key, with its sheet row."""
        records = self.read_rows(key_range)
        names = self._headers[key_range][3]
        if missing := [field for field in key_fields if field not in names]:
            raise ConfigurationError(
                f"{SOURCE}: spreadsheet {self.spreadsheet_id}, key range {key_range} starts "
                f"with {names} rather than {missing}: the columns moved between reads",
                hint="re-run the sync; if it persists, check the key field's `from:` and the "
                "sheet's header row",
            )
        listed = [
            {field: record.get(field, "") for field in key_fields} | {SHEET_ROW: record[SHEET_ROW]}
            for record in records
        ]
        return [record for record in listed if any(record[field] != "" for field in key_fields)]
