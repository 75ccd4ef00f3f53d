"""The Google Sheets client against the simulated Sheets API v4, over real loopback HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from sync_platform.config.models import EntityConfig
from sync_platform.defs.seller_sheet.resources import sheet_entity_source
from sync_platform.errors import ConfigurationError
from sync_platform.sources.google_auth import (
    ANALYTICS_READONLY,
    SPREADSHEETS_READONLY,
    ServiceAccountToken,
    StaticToken,
)
from sync_platform.sources.http_session import RetrySettings
from sync_platform.sources.seller_sheet import SheetsClient
from sync_platform.sources.seller_sheet.client import read_limiter

QUICK = RetrySettings(attempts=4, wait_initial=0.01, wait_jitter=0.0, wait_max=0.05)
SELLERS = 40
SHEET_ID = "sim-seller-sheet"
TOKEN = "sim-sheets-token"
ROBOT = "seller-sync@sim-project.iam.gserviceaccount.com"
HEADER = [
    "Seller Number", "Name", "Inquiry Date", "Email", "Phone", "Property Address",
    "Property Type", "Asking Price",
]  # fmt: skip
DATA = "Sellers!A1:H"


@pytest.fixture
def sheet(simulator):
    """The session simulator with a 40-seller sheet (two blank rows among them)."""
    simulator.sheets("POST", "/reset", {"sellers": SELLERS, "blank_rows": 2})
    return simulator


def client(sim, token=TOKEN, *, retry=QUICK, reads_per_minute=None, **kwargs) -> SheetsClient:
    return SheetsClient(
        kwargs.pop("spreadsheet_id", SHEET_ID),
        StaticToken(token, identity=ROBOT),
        base_url=f"{sim.url}/sheets",
        reads_per_minute=reads_per_minute,
        retry=retry,
        **kwargs,
    )


def raw_values(sim, cell_range=DATA, token: str | None = TOKEN) -> httpx.Response:
    return httpx.get(
        f"{sim.url}/sheets/v4/spreadsheets/{SHEET_ID}/values/{cell_range}",
        params={"majorDimension": "ROWS", "valueRenderOption": "FORMATTED_VALUE"},
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )


def stored_rows(sim) -> list[list[str]]:
    return sim.sheets("GET", "/rows")["rows"]


def sheets_served(sim, status: int) -> int:
    return sum(n for (_, code), n in sim.served("/sheets").items() if code == status)


def seller_entity(**spec) -> EntityConfig:
    return EntityConfig.model_validate(
        {
            "name": "sheet_sellers",
            "table": "sheet_sellers",
            "endpoint": DATA,
            "key": ["seller_number"],
            "fields": {
                "seller_number": {"from": "Seller Number", "required": True},
                "name": {"from": "Name"},
            },
        }
        | spec
    )


# -- rows -----------------------------------------------------------------------------------


def test_google_sends_ragged_rows_and_the_client_evens_them_out(sheet):
    raw = raw_values(sheet).json()
    assert raw["range"] == "Sellers!A1:H1000" and raw["majorDimension"] == "ROWS"
    lengths = {len(row) for row in raw["values"]}
    assert 0 in lengths and 8 in lengths and len(lengths) > 2  # blank, full, and cut short
    assert raw["values"][-1] != []  # trailing empty rows are left out

    records = client(sheet).read_rows(DATA)
    assert len(records) == SELLERS  # the two blank rows are skipped
    stored = stored_rows(sheet)
    for record in records:
        assert list(record) == [*HEADER, "_sheet_row"]
        row = stored[record["_sheet_row"] - 1]  # the sheet row it came from
        assert [record[name] for name in HEADER] == row + [""] * (8 - len(row))
    short = next(r for r in records if len(stored[r["_sheet_row"] - 1]) < 8)
    assert short["Asking Price"] == ""  # a dropped trailing cell reads as an empty one
    assert "AA12679" in {r["Seller Number"] for r in records}


def test_sheet_rows_count_blank_rows_so_a_row_can_be_found_in_the_sheet(sheet):
    sheet.sheets("POST", "/rows", {"row": 2, "values": []})  # a blank row under the header
    sheet.sheets("POST", "/rows", {"row": 3, "values": ["", "", ""]})  # empty cells only
    records = client(sheet).read_rows(DATA)
    assert records[0]["_sheet_row"] == 4
    assert stored_rows(sheet)[3][0] == records[0]["Seller Number"]


def test_a_header_below_a_title_row_numbers_rows_from_the_range_start(sheet):
    sheet.sheets("POST", "/rows", {"row": 1, "values": ["Seller list (do not sort)"]})
    sheet.sheets("POST", "/rows", {"row": 2, "values": []})
    records = client(sheet).read_rows("Sellers!A3:H")
    assert list(records[0]) == [*HEADER, "_sheet_row"]
    stored = stored_rows(sheet)
    assert [r["_sheet_row"] for r in records[:2]] == [4, 5]
    assert all(stored[r["_sheet_row"] - 1][0] == r["Seller Number"] for r in records)


def test_a_range_away_from_a1_and_a_quoted_sheet_name(sheet):
    sheet.sheets("POST", "/reset", {"sellers": 5, "blank_rows": 0, "sheet_name": "Seller List"})
    records = client(sheet).read_rows("'Seller List'!B1:D")
    assert list(records[0]) == ["Name", "Inquiry Date", "Email", "_sheet_row"]
    assert [r["_sheet_row"] for r in records] == [2, 3, 4, 5, 6]
    assert client(sheet).key_range("'Seller List'!A1:H", ["Seller Number"]) == (
        "'Seller List'!A1:A"
    )


def test_cells_beyond_the_header_are_kept_aside(sheet):
    cells = ["AA99001", "Noor Haddad", "03/03/2025", "", "", "", "", "", "", "call after 5pm"]
    sheet.sheets("PUT", "/sellers/AA99001", cells)
    records = client(sheet).read_rows("Sellers")
    assert records[-1]["_extra_cells"] == ["", "call after 5pm"]  # columns I and J
    assert records[-1]["Name"] == "Noor Haddad"
    assert "_extra_cells" not in records[0]


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        (
            [*HEADER[:3], "Email", "Phone", "Email"],
            r"repeats column names: 'Email' in columns D, F",
        ),
        ([*HEADER[:2], "  ", *HEADER[3:]], r"has no name in column C"),
        ([], r"header row \(sheet row 1\) is empty"),
    ],
)
def test_a_header_that_cannot_key_rows_is_refused(sheet, header, complaint):
    sheet.sheets("PUT", "/header", header)
    with pytest.raises(ConfigurationError, match=complaint) as caught:
        client(sheet).read_rows(DATA)
    assert "spreadsheet sim-seller-sheet, range Sellers!A1:H" in str(caught.value)


def test_an_empty_range_says_so(sheet):
    with pytest.raises(ConfigurationError, match="Sellers!M1:P is empty: no header row"):
        client(sheet).read_rows("Sellers!M1:P")


def test_rows_people_broke_arrive_as_they_are(sheet):
    sellers = [r["Seller Number"] for r in client(sheet).read_rows(DATA)]
    broken = {}
    for seller, problem in zip(
        sellers[:3],
        ["bad_seller_number", "missing_inquiry_date", "property_without_address"],
        strict=True,
    ):
        broken[problem] = sheet.sheets("POST", f"/sellers/{seller}/invalid", {"problem": problem})
    records = {r["_sheet_row"]: r for r in client(sheet).read_rows(DATA)}
    assert records[broken["bad_seller_number"]["row"]]["Seller Number"] == (f"AA-{sellers[0][2:]}")
    assert records[broken["missing_inquiry_date"]["row"]]["Inquiry Date"] == ""
    no_address = records[broken["property_without_address"]["row"]]
    assert no_address["Property Address"] == ""
    assert no_address["Property Type"] and no_address["Asking Price"].startswith("$")


def test_sellers_put_and_deleted_by_number(sheet):
    sheet.sheets("PUT", "/sellers/AA99002", {"Name": "Ida Park", "Inquiry Date": "01/02/2025"})
    sheet.sheets("DELETE", "/sellers/AA12679")
    records = client(sheet).read_rows(DATA)
    assert records[-1] | {"_sheet_row": 0} == dict.fromkeys(HEADER, "") | {
        "Seller Number": "AA99002", "Name": "Ida Park", "Inquiry Date": "01/02/2025",
        "_sheet_row": 0,
    }  # fmt: skip
    assert "AA12679" not in {r["Seller Number"] for r in records}
    assert len(records) == SELLERS


# -- errors ---------------------------------------------------------------------------------


def test_a_sheet_not_shared_says_whom_to_share_it_with(sheet):
    sheet.sheets("POST", "/sharing", {"shared": False})
    with pytest.raises(ConfigurationError) as caught:
        client(sheet).read_rows(DATA)
    message = str(caught.value)
    assert f"{ROBOT} may not read spreadsheet sim-seller-sheet" in message
    assert f"share the sheet with {ROBOT}" in message
    assert "The caller does not have permission" in message
    assert sheets_served(sheet, 403) == 1  # not retried


def test_an_unknown_spreadsheet_names_the_id_and_range(sheet):
    with pytest.raises(ConfigurationError) as caught:
        client(sheet, spreadsheet_id="1NoSuchSheet").read_rows(DATA)
    message = str(caught.value)
    assert "no spreadsheet 1NoSuchSheet, range Sellers!A1:H (404)" in message
    assert "SELLER_SHEET_ID" in message


def test_a_renamed_tab_is_a_range_problem(sheet):
    with pytest.raises(ConfigurationError, match=r"range Sellers 2024!A1:H \(400: Unable to parse"):
        client(sheet).read_rows("Sellers 2024!A1:H")


def test_a_token_google_refuses_is_a_configuration_error(sheet):
    with pytest.raises(ConfigurationError, match=f"refused the access token of {ROBOT}"):
        client(sheet, token="expired-token").read_rows(DATA)
    missing = raw_values(sheet, token=None).json()["error"]
    assert missing["code"] == 401 and missing["status"] == "UNAUTHENTICATED"


def test_tokens_from_the_simulated_oauth_endpoint_are_checked_for_their_scope(sheet):
    key = sheet.http.get("/_sim/google/service_account").json()
    provider = ServiceAccountToken(key, [SPREADSHEETS_READONLY])  # the production path
    with SheetsClient(
        SHEET_ID, provider, base_url=f"{sheet.url}/sheets", reads_per_minute=None, retry=QUICK
    ) as reader:
        assert len(reader.read_rows(DATA)) == SELLERS
    wrong_scope = ServiceAccountToken(key, [ANALYTICS_READONLY])
    with (
        SheetsClient(SHEET_ID, wrong_scope, base_url=f"{sheet.url}/sheets", retry=QUICK) as reader,
        pytest.raises(ConfigurationError, match="has no Sheets scope") as caught,
    ):
        reader.read_rows(DATA)
    assert SPREADSHEETS_READONLY in str(caught.value)


# -- quota ----------------------------------------------------------------------------------


def test_google_answers_reads_over_quota_with_resource_exhausted(sheet):
    sheet.sheets("POST", "/quota", {"reads_per_minute": 2, "window_seconds": 60})
    assert [raw_values(sheet).status_code for _ in range(3)] == [200, 200, 429]
    over = raw_values(sheet)
    assert over.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "Read requests per minute per user" in over.json()["error"]["message"]
    assert raw_values(sheet, token="another-user").status_code == 401  # not a user here
    sheet.sheets("POST", "/clock", {"advance_seconds": 60})  # the next minute
    assert raw_values(sheet).status_code == 200


def test_a_429_is_retried_with_backoff_until_the_quota_refills(sheet):
    sheet.sheets("POST", "/quota", {"reads_per_minute": 2, "window_seconds": 0.5})
    retry = RetrySettings(attempts=8, wait_initial=0.1, wait_max=0.4, wait_jitter=0.0)
    reader = client(sheet, retry=retry)
    assert [len(reader.read_rows(DATA)) for _ in range(4)] == [SELLERS] * 4
    assert sheets_served(sheet, 429) >= 1 and sheets_served(sheet, 200) == 4


def test_the_client_paces_itself_under_the_quota(sheet):
    sheet.sheets("POST", "/quota", {"reads_per_minute": 4, "window_seconds": 1.0})
    limiter = read_limiter("test_the_client_paces_itself", 4, 1.2)
    reader = client(sheet, retry=RetrySettings(attempts=1), limiter=limiter)
    started = time.monotonic()
    for _ in range(6):
        reader.read_rows("Sellers!A1:B")
    assert time.monotonic() - started >= 1.2  # the 5th read waited for the window
    assert sheets_served(sheet, 429) == 0 and sheets_served(sheet, 200) == 6


# -- the engine's view: the AA12679 gap -----------------------------------------------------


def test_a_row_dropped_from_one_full_read_still_shows_in_the_key_listing(sheet):
    sheet.faults(drop_keys=[{"key": "AA12679", "times": 1}])
    reader = client(sheet)
    with sheet_entity_source(reader, seller_entity()) as source:
        listed = [r["Seller Number"] for page in source.key_listing() for r in page]
        fetched = [r["Seller Number"] for page in source.pages(None) for r in page]
    assert "AA12679" not in fetched and len(fetched) == SELLERS - 1
    assert "AA12679" in listed and len(listed) == SELLERS
    assert sorted(set(listed) - set(fetched)) == ["AA12679"]
    assert sheet.served("/sheets") == {
        ("/sheets/v4/spreadsheets/sim-seller-sheet/values/Sellers!1:1", 200): 1,  # the header
        ("/sheets/v4/spreadsheets/sim-seller-sheet/values/Sellers!A1:A", 200): 1,
        ("/sheets/v4/spreadsheets/sim-seller-sheet/values/Sellers!A1:H", 200): 1,
    }
    with pytest.raises(RuntimeError, match="closed"):  # one client per sync
        reader.read_rows(DATA)
    again = [r["Seller Number"] for r in client(sheet).read_rows(DATA)]
    assert "AA12679" in again  # the drop was for one read only


def test_a_row_lost_everywhere_is_gone_from_the_listing_too(sheet):
    sheet.faults(drop_keys=[{"key": "AA12679", "times": -1}])
    with sheet_entity_source(client(sheet), seller_entity()) as source:
        listed = [r["Seller Number"] for page in source.key_listing() for r in page]
    assert "AA12679" not in listed and len(listed) == SELLERS - 1


def test_the_key_listing_finds_its_column_by_header_and_notices_a_moved_column(sheet):
    entity = seller_entity(key=["name"], fields={"name": {"from": "Name", "required": True}})
    with sheet_entity_source(client(sheet), entity) as source:  # no data read first
        listed = [r["Name"] for page in source.key_listing() for r in page]
    assert len(listed) == SELLERS
    assert ("/sheets/v4/spreadsheets/sim-seller-sheet/values/Sellers!B1:B", 200) in sheet.served()
    reader = client(sheet)
    with pytest.raises(ConfigurationError, match="columns moved between reads"):
        reader.key_records("Sellers!C1:C", ["Name"])


def test_an_entity_fed_by_some_rows_only_can_go_without_a_listing(sheet):
    with sheet_entity_source(client(sheet), seller_entity(), list_keys=False) as source:
        assert source.key_listing is None
        assert sum(len(page) for page in source.pages(None)) == SELLERS
