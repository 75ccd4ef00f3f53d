"""The dealer API's writes and the planted-drift control, over real loopback HTTP: what a write
is refused for, what an accepted one changes (and stamps, and logs), the If-Unmodified-Since
precondition, and a drift whose answer key matches what the listings then serve."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

RESET = {"seed": 42, "dealer": {"stock": 60, "leads": 30}}
HEADERS = {"X-Api-Key": "sim-dealer-key"}
STOCK_PATH = "/dealer/api/v1/stock"
LEADS_PATH = "/dealer/api/v1/leads"
COSMETIC = {"BodyType", "Colour", "Location"}
NEW_LEAD = {
    "LeadId": 900,
    "StockNumber": "STK000001",
    "CustomerName": "Ada Lovelace",
    "Email": "ada@example.com",
    "Phone": "0400000000",
    "Source": "phone",
    "Status": "new",
    "CreatedAt": "2025-12-31T23:00:00Z",
}


def listing(client: httpx.Client, path: str, **params: Any) -> list[dict]:
    """Every item the public listing serves (the modules' data fits one page)."""
    response = client.get(path, params={"page_size": 1000, **params}, headers=HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total_pages"] <= 1
    return body["items"]


def vehicles(client: httpx.Client) -> dict[str, dict]:
    return {vehicle["StockNumber"]: vehicle for vehicle in listing(client, STOCK_PATH)}


def leads(client: httpx.Client, **params: Any) -> dict[int, dict]:
    return {lead["LeadId"]: lead for lead in listing(client, LEADS_PATH, **params)}


def writes(client: httpx.Client) -> list[dict]:
    return client.get("/_sim/dealer/writes").json()["items"]


def http_date(stamp: str) -> str:
    return format_datetime(datetime.fromisoformat(stamp.replace("Z", "+00:00")), usegmt=True)


def without(record: dict, *names: str) -> dict:
    return {name: value for name, value in record.items() if name not in names}


def newest(records: dict, stamp: str) -> str:
    return max(record[stamp] for record in records.values())


def put(client: httpx.Client, path: str, body: Any, **headers: str) -> httpx.Response:
    return client.put(path, json=body, headers=HEADERS | headers)


def patch(client: httpx.Client, path: str, body: Any, **headers: str) -> httpx.Response:
    return client.patch(path, json=body, headers=HEADERS | headers)


# -- accepted writes -------------------------------------------------------------------------


def test_put_replaces_a_vehicle_stamped_by_the_server_and_the_listing_serves_it(sim):
    before = vehicles(sim)
    vehicle = before["STK000007"]
    sent = without(vehicle, "LastUpdated") | {"Colour": "Teal", "Price": 12345.5, "Badge": None}
    response = put(sim, f"{STOCK_PATH}/STK000007", sent)
    assert response.status_code == 200, response.text
    stored = response.json()
    assert without(stored, "LastUpdated") == sent
    assert stored["LastUpdated"] > newest(before, "LastUpdated")  # the server's clock, newer
    assert response.headers["Last-Modified"] == http_date(stored["LastUpdated"])
    after = vehicles(sim)
    assert after["STK000007"] == stored
    assert without(after, "STK000007") == without(before, "STK000007")


def test_put_of_a_new_stock_number_creates_the_vehicle_with_201(sim):
    before = vehicles(sim)
    sent = without(before["STK000003"], "LastUpdated") | {"StockNumber": "STK500000"}
    response = put(sim, f"{STOCK_PATH}/STK500000", sent)
    assert response.status_code == 201, response.text
    after = vehicles(sim)
    assert set(after) == set(before) | {"STK500000"}
    assert without(after["STK500000"], "LastUpdated") == sent
    assert list(after["STK500000"]) == list(before["STK000003"])  # the listing's field order


def test_patch_changes_only_the_given_fields_and_bumps_last_updated(sim):
    before = vehicles(sim)
    response = patch(sim, f"{STOCK_PATH}/STK000011", {"Status": "Sold", "Odometer": 1})
    assert response.status_code == 200, response.text
    after = vehicles(sim)["STK000011"]
    assert response.json() == after
    expected = before["STK000011"] | {"Status": "Sold", "Odometer": 1}
    assert without(after, "LastUpdated") == without(expected, "LastUpdated")
    assert after["LastUpdated"] > newest(before, "LastUpdated")


def test_a_written_lead_is_served_by_the_incremental_read(sim):
    before = leads(sim)
    since = datetime.fromisoformat(newest(before, "UpdatedAt")) + timedelta(seconds=1)
    assert leads(sim, updated_since=since.isoformat()) == {}
    changed = patch(sim, f"{LEADS_PATH}/5", {"Status": "won"})
    created = put(sim, f"{LEADS_PATH}/900", NEW_LEAD)
    assert (changed.status_code, created.status_code) == (200, 201), created.text
    recent = leads(sim, updated_since=since.isoformat())
    assert set(recent) == {5, 900}
    assert without(recent[5], "UpdatedAt") == without(before[5], "UpdatedAt") | {"Status": "won"}
    assert without(recent[900], "UpdatedAt") == NEW_LEAD
    assert recent[5]["UpdatedAt"] < recent[900]["UpdatedAt"]  # one clock minute per write
    replaced = put(sim, f"{LEADS_PATH}/900", NEW_LEAD | {"Status": "contacted"})
    assert replaced.status_code == 200
    assert leads(sim)[900]["Status"] == "contacted"


def test_a_lead_timestamp_is_stored_in_the_feeds_utc_form(sim):
    sent = NEW_LEAD | {"CreatedAt": "2025-12-31T10:00:00+10:00"}
    assert put(sim, f"{LEADS_PATH}/900", sent).status_code == 201
    assert leads(sim)[900]["CreatedAt"] == "2025-12-31T00:00:00Z"


# -- refused writes ------------------------------------------------------------------------


def vehicle_body(client: httpx.Client, stock_number: str = "STK000002") -> dict:
    return without(vehicles(client)[stock_number], "LastUpdated")


REFUSALS = [
    # (method, path, body or raw bytes, headers, status, words the error must contain)
    ("PATCH", f"{STOCK_PATH}/STK000002", {"Colour": "Red", "Sunroof": True}, {}, 422,
     ["unknown field", "'Sunroof'"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", {"Year": "2020"}, {}, 422,
     ["Year", "must be an integer", "not text"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", {"Price": "48504.80"}, {}, 422,
     ["Price", "must be a number"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", {"Price": 1.005}, {}, 422, ["Price", "2 decimals"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", {"Odometer": True}, {}, 422,
     ["Odometer", "not a boolean"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", {"Status": "available"}, {}, 422,
     ["Status", "Available, Reserved, Sold", "'available'"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", {"VIN": "TOO-SHORT"}, {}, 422, ["VIN", "17 characters"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", {"LastUpdated": "2030-01-01T00:00:00Z"}, {}, 422,
     ["LastUpdated is set by the server"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", {}, {}, 422, ["no field"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", [{"Colour": "Red"}], {}, 422, ["JSON object"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", b'{"Colour": ', {}, 400, ["not valid JSON"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", b'{"Price": NaN}', {}, 400, ["not valid JSON"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", {"StockNumber": "STK000003"}, {}, 409,
     ["'STK000003'", "'STK000002'"]),
    ("PATCH", f"{STOCK_PATH}/STK999999", {"Colour": "Red"}, {}, 404, ["no vehicle STK999999"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", {"Colour": "Red"}, {"X-Api-Key": "wrong"}, 401,
     ["invalid or missing X-Api-Key"]),
    ("PATCH", f"{STOCK_PATH}/STK000002", {"Colour": "Red"},
     {"If-Unmodified-Since": "2026-01-01T00:00:00Z"}, 400, ["HTTP-date"]),
    ("PUT", f"{STOCK_PATH}/STK000002", {"StockNumber": "STK000002", "Colour": "Red"}, {}, 422,
     ["missing fields", "VIN", "Location"]),
    ("PATCH", f"{LEADS_PATH}/5", {"Status": "closed"}, {}, 422, ["Status", "won, lost"]),
    ("PATCH", f"{LEADS_PATH}/5", {"LeadId": "5"}, {}, 422, ["LeadId", "must be an integer"]),
    ("PATCH", f"{LEADS_PATH}/5", {"Email": "not-an-address"}, {}, 422, ["Email"]),
    ("PATCH", f"{LEADS_PATH}/5", {"UpdatedAt": "2030-01-01T00:00:00Z"}, {}, 422,
     ["UpdatedAt is set by the server"]),
    ("PATCH", f"{LEADS_PATH}/999", {"Status": "won"}, {}, 404, ["no lead 999"]),
    ("PUT", f"{LEADS_PATH}/901", NEW_LEAD, {}, 409, ["LeadId 900", "901"]),
    ("PUT", f"{LEADS_PATH}/900", NEW_LEAD | {"CreatedAt": "last week"}, {}, 422, ["CreatedAt"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "words"),
    REFUSALS,
    ids=[f"{r[0]} {r[1].rsplit('/', 2)[-2]} {r[4]} {r[5][0]}" for r in REFUSALS],
)
def test_a_refused_write_says_why_and_changes_nothing(
    sim, method, path, body, headers, status, words
):
    before = (vehicles(sim), leads(sim))
    content = body if isinstance(body, bytes) else None
    response = sim.request(
        method,
        path,
        json=None if content is not None else body,
        content=content,
        headers=HEADERS | headers,
    )
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    for word in words:
        assert word in response.json()["error"]
    assert (vehicles(sim), leads(sim)) == before
    assert writes(sim) == []


def test_every_problem_of_a_body_is_named_at_once(sim):
    sent = {"Colour": 7, "Year": 1850, "Make": "", "Towbar": True}
    error = patch(sim, f"{STOCK_PATH}/STK000002", sent).json()["error"]
    for word in ["Colour must be text", "Year must be between 1900", "Make must be", "'Towbar'"]:
        assert word in error


def test_an_error_body_quotes_only_a_short_prefix_of_what_was_sent(sim):
    huge = "x" * 10_000
    sent = {huge: 1, "Status": "S" + huge, **{f"Extra{n}": n for n in range(50)}}
    response = patch(sim, f"{STOCK_PATH}/STK000002", sent)
    assert response.status_code == 422
    assert len(response.content) < 400
    assert "x" * 100 not in response.text and "S" * 100 not in response.text
    assert "and 46 more" in response.json()["error"]  # five unknown fields named, the rest counted


def test_a_write_refused_by_an_injected_fault_is_not_applied(sim):
    before = vehicles(sim)["STK000004"]
    sim.post("/_sim/faults", json={"fail_next": 1}).raise_for_status()
    assert patch(sim, f"{STOCK_PATH}/STK000004", {"Colour": "Gold"}).status_code == 503
    assert vehicles(sim)["STK000004"] == before and writes(sim) == []
    assert patch(sim, f"{STOCK_PATH}/STK000004", {"Colour": "Gold"}).status_code == 200


# -- the precondition ------------------------------------------------------------------------


def test_if_unmodified_since_refuses_a_write_over_a_change_made_since(sim):
    read = vehicles(sim)["STK000009"]
    as_read = http_date(read["LastUpdated"])
    first = patch(
        sim, f"{STOCK_PATH}/STK000009", {"Price": 9999.0}, **{"If-Unmodified-Since": as_read}
    )
    assert first.status_code == 200, first.text
    # A second writer that read the same version loses: the record changed after it read it.
    stale = patch(
        sim, f"{STOCK_PATH}/STK000009", {"Price": 1.0}, **{"If-Unmodified-Since": as_read}
    )
    assert stale.status_code == 412
    assert "modified at" in stale.json()["error"]
    assert stale.headers["Last-Modified"] == first.headers["Last-Modified"]
    assert vehicles(sim)["STK000009"]["Price"] == 9999.0
    assert [entry["if_unmodified_since"] for entry in writes(sim)] == [as_read]
    # Sent with the version it last saw, the write goes through.
    fresh = first.headers["Last-Modified"]
    again = patch(sim, f"{STOCK_PATH}/STK000009", {"Price": 1.0}, **{"If-Unmodified-Since": fresh})
    assert again.status_code == 200


def test_if_unmodified_since_refuses_to_recreate_a_record_deleted_since(sim):
    body = vehicle_body(sim, "STK000006")
    as_read = http_date(vehicles(sim)["STK000006"]["LastUpdated"])
    sim.delete("/_sim/dealer/stock/STK000006").raise_for_status()
    refused = put(sim, f"{STOCK_PATH}/STK000006", body, **{"If-Unmodified-Since": as_read})
    assert refused.status_code == 412 and "deleted since" in refused.json()["error"]
    assert "STK000006" not in vehicles(sim)
    assert put(sim, f"{STOCK_PATH}/STK000006", body).status_code == 201  # unconditional


def test_if_unmodified_since_guards_leads_by_updated_at(sim):
    lead = leads(sim)[8]
    as_read = http_date(lead["UpdatedAt"])
    sim.post("/_sim/dealer/leads/mutate", json={"change": 30}).raise_for_status()  # all of them
    stale = patch(sim, f"{LEADS_PATH}/8", {"Status": "lost"}, **{"If-Unmodified-Since": as_read})
    assert stale.status_code == 412
    assert leads(sim)[8]["Status"] != "lost"


# -- the write log ---------------------------------------------------------------------------


def test_the_write_log_holds_exactly_the_accepted_writes_in_order(sim):
    body = vehicle_body(sim) | {"Location": "Penrith"}
    assert put(sim, f"{STOCK_PATH}/STK000002", body).status_code == 200
    assert patch(sim, f"{STOCK_PATH}/STK000002", {"Sunroof": True}).status_code == 422
    assert patch(sim, f"{LEADS_PATH}/3", {"Phone": "0411111111"}).status_code == 200
    served_vehicle, served_lead = vehicles(sim)["STK000002"], leads(sim)[3]
    log = writes(sim)
    assert [
        {name: entry[name] for name in ("seq", "method", "path", "resource", "key", "status")}
        for entry in log
    ] == [
        {"seq": 1, "method": "PUT", "path": f"{STOCK_PATH}/STK000002", "resource": "stock",
         "key": "STK000002", "status": 200},
        {"seq": 2, "method": "PATCH", "path": f"{LEADS_PATH}/3", "resource": "leads",
         "key": 3, "status": 200},
    ]  # fmt: skip
    assert [entry["body"] for entry in log] == [body, {"Phone": "0411111111"}]
    assert [entry["record"] for entry in log] == [served_vehicle, served_lead]
    assert [entry["at"] for entry in log] == [
        served_vehicle["LastUpdated"],
        served_lead["UpdatedAt"],
    ]
    assert [entry["if_unmodified_since"] for entry in log] == [None, None]
    sim.post("/_sim/reset", json=RESET).raise_for_status()
    assert writes(sim) == []


# -- planted drift -------------------------------------------------------------------------

DRIFT = {
    "seed": 7,
    "stock": {"cosmetic": 5, "price": 4, "status": 3, "delete": 2, "insert": 3},
    "leads": {"status": 4, "delete": 2, "insert": 3},
}


def differences(before: dict, after: dict, stamp: str) -> tuple[dict, set, set]:
    """(key → fields changed other than `stamp`, keys deleted, keys inserted), from two reads."""
    changed = {
        key: {name for name in after[key].keys() | record.keys() if name != stamp
              and after[key].get(name) != record.get(name)}
        for key, record in before.items() if key in after
    }  # fmt: skip
    return (
        {key: names for key, names in changed.items() if names},
        set(before) - set(after),
        set(after) - set(before),
    )


def edits(kinds: list[list[dict]]) -> dict:
    """The answer key's edits as key → fields, asserting no record is in two of them."""
    found = {entry["key"]: set(entry["fields"]) for kind in kinds for entry in kind}
    assert len(found) == sum(len(kind) for kind in kinds)
    return found


def test_the_drift_answer_key_is_exactly_what_the_listings_then_serve(sim):
    stock_before, leads_before = vehicles(sim), leads(sim)
    response = sim.post("/_sim/dealer/drift", json=DRIFT)
    assert response.status_code == 200, response.text
    key = response.json()
    stock_after, leads_after = vehicles(sim), leads(sim)

    stock = key["stock"]
    changed, deleted, inserted = differences(stock_before, stock_after, "LastUpdated")
    assert changed == edits([stock["cosmetic"], stock["price"], stock["status"]])
    assert (deleted, inserted) == (set(stock["deleted"]), set(stock["inserted"]))
    counts = {kind: len(stock[kind]) for kind in ("cosmetic", "price", "status")}
    assert counts == {"cosmetic": 5, "price": 4, "status": 3}
    assert (len(deleted), len(inserted)) == (2, 3)
    assert all(set(entry["fields"]) <= COSMETIC for entry in stock["cosmetic"])
    assert {tuple(entry["fields"]) for entry in stock["price"]} == {("Price",)}
    assert {tuple(entry["fields"]) for entry in stock["status"]} == {("Status",)}
    was = newest(stock_before, "LastUpdated")
    assert all(stock_after[k]["LastUpdated"] > was for k in [*changed, *inserted])

    people = key["leads"]
    changed, deleted, inserted = differences(leads_before, leads_after, "UpdatedAt")
    assert changed == edits([people["status"]])
    assert {tuple(entry["fields"]) for entry in people["status"]} == {("Status",)}
    assert (deleted, inserted) == (set(people["deleted"]), set(people["inserted"]))
    assert (len(changed), len(deleted), len(inserted)) == (4, 2, 3)
    since = datetime.fromisoformat(newest(leads_before, "UpdatedAt")) + timedelta(seconds=1)
    assert set(leads(sim, updated_since=since.isoformat())) == {*changed, *inserted}


def test_a_drift_is_the_same_for_the_same_seed_and_another_for_another(sim):
    first = sim.post("/_sim/dealer/drift", json=DRIFT).json()
    served = (listing(sim, STOCK_PATH), listing(sim, LEADS_PATH))
    sim.post("/_sim/reset", json=RESET).raise_for_status()
    assert sim.post("/_sim/dealer/drift", json=DRIFT).json() == first
    assert (listing(sim, STOCK_PATH), listing(sim, LEADS_PATH)) == served
    sim.post("/_sim/reset", json=RESET).raise_for_status()
    other = sim.post("/_sim/dealer/drift", json=DRIFT | {"seed": 8}).json()
    assert other["stock"] != first["stock"]


def test_a_drift_asking_for_more_than_there_is_does_what_it_can_and_says_so(sim):
    ask = {"seed": 1, "stock": {"delete": 500}, "leads": {"status": 10, "delete": 500}}
    key = sim.post("/_sim/dealer/drift", json=ask).json()
    assert len(key["stock"]["deleted"]) == 60 and vehicles(sim) == {}
    assert len(key["leads"]["deleted"]) == 20  # the 10 moved ones are kept
    assert set(leads(sim)) == {entry["key"] for entry in key["leads"]["status"]}


def test_a_drift_body_with_a_typo_is_refused(sim):
    refused = sim.post("/_sim/dealer/drift", json={"seed": 1, "stock": {"colour": 3}})
    assert refused.status_code == 400 and "colour" in refused.json()["error"]
    assert sim.post("/_sim/dealer/drift", json={"stock": {}}).status_code == 400  # no seed


# -- the schema ------------------------------------------------------------------------------


def test_the_openapi_schema_shows_the_write_endpoints_and_the_controls(sim):
    paths = sim.get("/_sim/openapi.json").json()["paths"]
    operations = {
        (method.upper(), path): operation
        for path, methods in paths.items()
        for method, operation in methods.items()
    }
    for method, path in [
        ("PUT", "/dealer/api/v1/stock/{StockNumber}"),
        ("PATCH", "/dealer/api/v1/stock/{StockNumber}"),
        ("PUT", "/dealer/api/v1/leads/{LeadId}"),
        ("PATCH", "/dealer/api/v1/leads/{LeadId}"),
        ("GET", "/_sim/dealer/writes"),
        ("POST", "/_sim/dealer/drift"),
    ]:
        assert operations[method, path]["summary"], (method, path)
    put_vehicle = operations["PUT", "/dealer/api/v1/stock/{StockNumber}"]
    schema = put_vehicle["requestBody"]["content"]["application/json"]["schema"]
    assert "LastUpdated" not in schema["properties"]
    assert set(schema["required"]) == set(schema["properties"]) and "VIN" in schema["required"]
    assert {"200", "201", "409", "412", "422"} <= set(put_vehicle["responses"])
    headers = {p["name"].lower() for p in put_vehicle["parameters"] if p["in"] == "header"}
    assert "if-unmodified-since" in headers
