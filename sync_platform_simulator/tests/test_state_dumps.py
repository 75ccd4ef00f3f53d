"""The read-only state dumps a soak test compares a warehouse with: each equals what the
source's API serves (every page, faults cleared), after mutations and dirt too, and reading
it changes nothing (no fault, no pull, no quota, no clock, no session)."""

from __future__ import annotations

import json
from typing import Any

import httpx

TODAY = "2026-03-10"
RESET = {
    "seed": 42,
    "dealer": {"stock": 23, "leads": 11},
    "erp": {"products": 9, "variants": 21, "customers": 13},
    "ga4": {"today": TODAY},
}
DEALER = {"X-Api-Key": "sim-dealer-key"}
GA4 = {"Authorization": "Bearer sim-ga4-token"}
RUN_REPORT = "/ga4/v1beta/properties/123456789:runReport"
PEEK_REPORT = "/_sim/ga4/properties/123456789:peekReport"
ENTITIES = ["products", "variants", "customers"]
REPORT = {
    "dateRanges": [{"startDate": "6daysAgo", "endDate": "today"}],
    "dimensions": [{"name": "date"}, {"name": "deviceCategory"}],
    "metrics": [{"name": "sessions"}, {"name": "totalUsers"}, {"name": "engagementRate"}],
}


def decoded(response: httpx.Response) -> Any:
    """The body by its declared charset (the ERP's is Latin-1), bare NaN tokens allowed."""
    assert response.status_code == 200, response.text
    return json.loads(response.content.decode(response.charset_encoding or "utf-8"))


def same(left: list, right: list) -> bool:
    """Equal as JSON text, so NaN (never == itself) compares equal to NaN."""
    return json.dumps(left) == json.dumps(right)


def walk(client: httpx.Client, path: str, key: str, headers: dict[str, str]) -> list[dict]:
    """Every item of a paged listing, read in small pages."""
    found, page = [], 1
    while True:
        body = decoded(client.get(path, params={"page": page, "page_size": 4}, headers=headers))
        found += body[key]
        if page >= body["total_pages"]:
            return found
        page += 1


def erp_session(client: httpx.Client) -> dict[str, str]:
    login = {"username": "sim-user", "password": "sim-pass"}
    token = decoded(client.post("/erp/api/v1/login", json=login))["session_token"]
    return {"X-Session-Token": token}


def dumps(client: httpx.Client) -> dict[str, list]:
    found = {
        "stock": decoded(client.get("/_sim/dealer/stock"))["items"],
        "leads": decoded(client.get("/_sim/dealer/leads"))["items"],
    }
    for entity in ENTITIES:
        found[entity] = decoded(client.get(f"/_sim/erp/records/{entity}"))["items"]
    return found


def api(client: httpx.Client) -> dict[str, list]:
    found = {
        "stock": walk(client, "/dealer/api/v1/stock", "items", DEALER),
        "leads": walk(client, "/dealer/api/v1/leads", "items", DEALER),
    }
    session = erp_session(client)
    for entity in ENTITIES:
        found[entity] = walk(client, f"/erp/api/v1/{entity}", "data", session)
    return found


def assert_dumps_match_the_api(client: httpx.Client) -> None:
    served, dumped = api(client), dumps(client)
    for name, items in served.items():
        assert items, name
        assert same(dumped[name], items), name


def run_report(client: httpx.Client, **extra: Any) -> dict[str, Any]:
    response = client.post(RUN_REPORT, json=REPORT | extra, headers=GA4)
    assert response.status_code == 200, response.text
    return response.json()


def peek(client: httpx.Client, body: dict[str, Any] = REPORT) -> dict[str, Any]:
    response = client.post(PEEK_REPORT, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def untouched_state(client: httpx.Client) -> dict[str, Any]:
    """What a read must not change: pulls, quota, ERP clock, fault plan, request stats."""
    return {
        path: client.get(path).json()
        for path in ["/_sim/ga4/pulls", "/_sim/ga4/quota", "/_sim/erp/clock", "/_sim/faults"]
    } | {"stats": client.get("/_sim/stats").json()}


# -- dealer and ERP --------------------------------------------------------------------------


def test_each_dump_is_every_page_of_the_api_in_order(sim):
    assert_dumps_match_the_api(sim)


def test_the_dumps_follow_mutations_plants_and_dirt(sim):
    sim.post("/_sim/dealer/mutate", json={"change": 5, "add": 3, "remove": 2}).raise_for_status()
    sim.post("/_sim/dealer/leads/mutate", json={"change": 4, "add": 2}).raise_for_status()
    bad_vehicle = {"StockNumber": "STK900000", "Price": "abc"}
    sim.put("/_sim/dealer/stock/STK900000", json=bad_vehicle).raise_for_status()
    bad_lead = {"LeadId": 77, "UpdatedAt": "not a date"}
    sim.put("/_sim/dealer/leads/77", json=bad_lead).raise_for_status()
    for entity in ENTITIES:
        change = {"entity": entity, "change": 3, "add": 2, "remove": 1}
        sim.post("/_sim/erp/mutate", json=change).raise_for_status()
    for entity, field, kind in [
        ("products", "ListPrice", "bare_nan"),
        ("products", "Name", "trailing_spaces"),
        ("variants", "Price", "infinity"),
        ("customers", "ModifiedDate", "zero_date"),
    ]:
        dirt = {"entity": entity, "field": field, "kind": kind, "count": 3}
        sim.post("/_sim/erp/dirty", json=dirt).raise_for_status()
    planted = {"CustomerNo": 99999, "Name": "Łukasz Wrocławski", "City": "Łódź"}
    sim.put("/_sim/erp/customers/99999", json=planted).raise_for_status()
    sim.post("/_sim/erp/variants/orphan", json={}).raise_for_status()

    assert_dumps_match_the_api(sim)
    dumped = dumps(sim)
    assert bad_vehicle in dumped["stock"] and bad_lead in dumped["leads"]
    assert any(p["ListPrice"] != p["ListPrice"] for p in dumped["products"])  # a bare NaN
    assert {**planted, "Name": "?ukasz Wroc?awski", "City": "?ód?"} in dumped["customers"]


def test_the_erp_dump_is_written_as_the_listing_is(sim):
    listing = sim.get("/erp/api/v1/customers", headers=erp_session(sim))
    dump = sim.get("/_sim/erp/records/customers")
    assert dump.headers["content-type"] == listing.headers["content-type"]
    assert dump.headers["content-type"] == "application/json; charset=iso-8859-1"


def test_an_unknown_entity_is_a_404_naming_the_known_ones(sim):
    response = sim.get("/_sim/erp/records/orders")
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown entity 'orders'; known: products, variants, customers"
    }


def test_faults_neither_touch_the_dumps_nor_are_used_up_by_them(sim):
    before = dumps(sim)
    drops = [("STK000003", 1), ("STK000005", -1), ("P000002", 1), ("P000004", -1)]
    plan = {"error_rate": 1, "drop_keys": [{"key": k, "times": n} for k, n in drops]}
    sim.post("/_sim/faults", json=plan).raise_for_status()
    state = untouched_state(sim)
    assert dumps(sim) == before  # no NaN here: nothing is dirty
    assert untouched_state(sim) == state
    assert sim.get("/dealer/api/v1/stock", headers=DEALER).status_code == 503


def test_reading_the_dumps_changes_nothing(sim):
    api_before = api(sim)
    state = untouched_state(sim)
    sim.post("/_sim/erp/sessions/expire").raise_for_status()  # the dump needs no session
    dumps(sim)
    dumps(sim)
    assert untouched_state(sim) == state
    assert api(sim) == api_before


# -- GA4 ---------------------------------------------------------------------------------


def test_peek_is_what_the_latest_pull_served_and_counts_nothing(sim):
    first = run_report(sim)
    second = run_report(sim)
    assert first["rows"] != second["rows"]  # recent dates were revised upwards
    state = untouched_state(sim)
    assert peek(sim) == second
    assert untouched_state(sim) == state
    assert run_report(sim)["rows"] != second["rows"]  # so the next pull is a third one


def test_each_report_is_revised_by_its_own_pulls(sim):
    """A report's pull does not revise another report: the reports a job pulls one after
    the other see recent dates alike, whichever runs first, and each peek is what that
    report's own latest pull served."""
    daily = {"dimensions": [{"name": "date"}], "metrics": [{"name": "sessions"}]}
    next_daily = peek(sim, REPORT | daily)  # never pulled: as its next pull will serve it
    by_device = run_report(sim)
    totals = run_report(sim, **daily)
    assert totals == next_daily
    assert peek(sim) == by_device and peek(sim, REPORT | daily) == totals
    assert run_report(sim, **daily) != totals  # its own second pull is revised upwards
    assert sim.get("/_sim/ga4/pulls").json()["pulls"][-1]["count"] == 3  # all reports


def test_peek_of_dates_never_pulled_is_what_the_next_pull_serves(sim):
    peeked = peek(sim)
    assert sim.get("/_sim/ga4/pulls").json() == {"pulls": []}
    assert run_report(sim) == peeked


def test_peek_keeps_the_figures_a_date_was_last_served_after_it_aged(sim):
    """Once a pulled date is older than revision_days a new pull would see it final, but the
    warehouse holds what the latest pull served, and so does peek."""
    served = run_report(sim)
    sim.post("/_sim/ga4/today", json={"date": "2026-03-20"}).raise_for_status()
    pinned = REPORT | {"dateRanges": [{"startDate": "2026-03-04", "endDate": TODAY}]}
    assert peek(sim, pinned) == served
    fresh = sim.post(RUN_REPORT, json=pinned, headers=GA4).json()
    assert fresh["rows"] != served["rows"]
    assert peek(sim, pinned) == fresh


def test_peek_returns_every_row_the_pages_of_one_read_hold(sim):
    """limit and offset are checked but not applied: peek is all pages at once."""
    rows, offset = [], 0
    while True:
        page = run_report(sim, limit=5, offset=offset)
        rows += page["rows"]
        offset += 5
        if offset >= page["rowCount"]:
            break
    assert len(rows) > 5
    peeked = peek(sim, REPORT | {"limit": 5, "offset": 5})
    assert peeked["rows"] == rows and peeked["rowCount"] == len(rows)


def test_peek_meets_no_fault_and_needs_no_quota(sim):
    run_report(sim)
    expected = peek(sim)
    sim.post("/_sim/faults", json={"error_rate": 1}).raise_for_status()
    sim.post("/_sim/ga4/corrupt", json={"mode": "short_page"}).raise_for_status()
    sim.post("/_sim/ga4/resource_exhausted", json={"times": 1}).raise_for_status()
    budget = {"tokens_per_hour": 0, "tokens_per_day": 0}
    sim.post("/_sim/ga4/quota", json=budget).raise_for_status()
    assert peek(sim) == expected
    assert sim.post(RUN_REPORT, json=REPORT, headers=GA4).status_code == 503
    sim.delete("/_sim/faults").raise_for_status()
    exhausted = sim.post(RUN_REPORT, json=REPORT, headers=GA4)  # that fault is still due
    assert "concurrent requests" in exhausted.json()["error"]["message"]


def test_peek_checks_the_body_and_property_as_run_report_does(sim):
    bad = sim.post(PEEK_REPORT, json=REPORT | {"metrics": [{"name": "sesions"}]})
    assert bad.status_code == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    missing = sim.post("/_sim/ga4/properties/555:peekReport", json=REPORT)
    assert missing.status_code == 404
