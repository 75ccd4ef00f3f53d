"""The source simulator, over real loopback HTTP: deterministic data in the dealer wire format,
and exactly the faults it is told to inject."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
import pytest

from sync_platform_simulator import DealerSettings, SimulatorServer

SEED = 42
STOCK = 120
LEADS = 60
KEY = "sim-dealer-key"
HEADERS = {"X-Api-Key": KEY}
RESET = {"seed": SEED, "dealer": {"stock": STOCK, "leads": LEADS}}
STOCK_PATH = "/dealer/api/v1/stock"
LEADS_PATH = "/dealer/api/v1/leads"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
STOCK_KEYS = {
    "StockNumber", "VIN", "Make", "Model", "Badge", "Year", "Odometer", "Price", "Status",
    "Colour", "BodyType", "FuelType", "Transmission", "Location", "LastUpdated",
}  # fmt: skip
LEAD_KEYS = {
    "LeadId", "StockNumber", "CustomerName", "Email", "Phone", "Source", "Status",
    "CreatedAt", "UpdatedAt",
}  # fmt: skip


def stock(client: httpx.Client, **params) -> httpx.Response:
    return client.get(STOCK_PATH, params={"page_size": 1000, **params}, headers=HEADERS)


def leads(client: httpx.Client, **params) -> httpx.Response:
    return client.get(LEADS_PATH, params={"page_size": 1000, **params}, headers=HEADERS)


def items(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["items"]


def by_key(response: httpx.Response) -> dict[str, dict]:
    return {item["StockNumber"]: item for item in items(response)}


def served(client: httpx.Client) -> dict[tuple[str, int], int]:
    rows = client.get("/_sim/stats").json()["requests"]
    return {(row["path"], row["status"]): row["count"] for row in rows}


def set_faults(client: httpx.Client, **plan) -> None:
    client.post("/_sim/faults", json=plan).raise_for_status()


# -- data -----------------------------------------------------------------------------------


def test_the_same_seed_serves_identical_bytes_and_another_seed_does_not(sim):
    twin = SimulatorServer(seed=SEED, dealer=DealerSettings(stock=STOCK, leads=LEADS))
    with twin, httpx.Client(base_url=twin.url, timeout=10) as other:
        assert stock(sim).content == stock(other).content
        assert leads(sim).content == leads(other).content
        change = {"change": 4, "add": 3, "remove": 2}
        assert (
            sim.post("/_sim/dealer/mutate", json=change).json()
            == other.post("/_sim/dealer/mutate", json=change).json()
        )
        assert stock(sim).content == stock(other).content
        other.post("/_sim/reset", json={**RESET, "seed": 7}).raise_for_status()
        assert stock(sim).content != stock(other).content
        assert len(items(stock(other))) == STOCK


def test_records_have_the_documented_shape(sim):
    vehicles = items(stock(sim))
    assert len(vehicles) == STOCK
    for vehicle in vehicles:
        assert set(vehicle) == STOCK_KEYS
        assert VIN.match(vehicle["VIN"]), vehicle["VIN"]
        assert isinstance(vehicle["Year"], int) and 2005 <= vehicle["Year"] <= 2026
        assert isinstance(vehicle["Odometer"], int) and vehicle["Odometer"] >= 0
        assert vehicle["Price"] >= 0 and round(vehicle["Price"], 2) == vehicle["Price"]
        assert vehicle["Status"] in {"Available", "Reserved", "Sold"}
        assert ISO_UTC.match(vehicle["LastUpdated"])
        assert vehicle["LastUpdated"] < "2026-01-01T00:00:00Z"  # history precedes the clock
    stock_numbers = {vehicle["StockNumber"] for vehicle in vehicles}
    people = items(leads(sim))
    assert len(people) == LEADS
    for lead in people:
        assert set(lead) == LEAD_KEYS
        assert isinstance(lead["LeadId"], int)
        assert lead["StockNumber"] in stock_numbers
        assert lead["Source"] in {"website", "carsales", "walk-in", "phone"}
        assert lead["Status"] in {"new", "contacted", "qualified", "won", "lost"}
        assert ISO_UTC.match(lead["CreatedAt"]) and ISO_UTC.match(lead["UpdatedAt"])
        assert lead["CreatedAt"] <= lead["UpdatedAt"]


def test_pages_hold_every_vehicle_once_in_stock_number_order(sim):
    pages = [stock(sim, page=n, page_size=50).json() for n in (1, 2, 3, 4)]
    assert [(p["page"], p["page_size"], p["total"], p["total_pages"]) for p in pages] == [
        (n, 50, STOCK, 3) for n in (1, 2, 3, 4)
    ]
    assert [len(p["items"]) for p in pages] == [50, 50, 20, 0]
    keys = [item["StockNumber"] for p in pages for item in p["items"]]
    assert keys == sorted(set(keys)) and len(keys) == STOCK
    assert keys[0] == "STK000000" and keys[-1] == f"STK{STOCK - 1:06d}"


def test_page_size_is_capped_at_1000(sim):
    assert stock(sim, page_size=1000).status_code == 200
    too_big = stock(sim, page_size=1001)
    assert too_big.status_code == 400 and "page_size" in too_big.json()["error"]
    assert stock(sim, page=0).status_code == 400
    assert stock(sim, page="one").status_code == 400


def test_a_fields_listing_holds_only_the_named_keys(sim):
    full = [item["StockNumber"] for item in items(stock(sim))]
    listing = items(stock(sim, fields="StockNumber"))
    assert listing == [{"StockNumber": key} for key in full]
    two = items(stock(sim, fields="StockNumber,Price", page_size=5))
    assert [set(item) for item in two] == [{"StockNumber", "Price"}] * 5


def test_a_missing_or_wrong_api_key_is_refused(sim):
    missing = sim.get(STOCK_PATH)
    assert missing.status_code == 401
    assert missing.json() == {"error": "invalid or missing X-Api-Key"}
    assert sim.get(LEADS_PATH, headers={"X-Api-Key": "wrong"}).status_code == 401
    sim.post("/_sim/reset", json={"dealer": {"stock": 3, "leads": 1, "api_key": "rotated"}})
    assert stock(sim).status_code == 401
    assert sim.get(STOCK_PATH, headers={"X-Api-Key": "rotated"}).json()["total"] == 3


def test_updated_since_returns_only_leads_changed_since(sim):
    everything = items(leads(sim))
    order = [(lead["UpdatedAt"], lead["LeadId"]) for lead in everything]
    assert order == sorted(order)
    newest = max(everything, key=lambda lead: (lead["UpdatedAt"], lead["LeadId"]))
    newest_before = newest["UpdatedAt"]
    inclusive = items(leads(sim, updated_since=newest_before))
    assert newest in inclusive  # UpdatedAt >= updated_since
    mutated = sim.post("/_sim/dealer/leads/mutate", json={"change": 3, "add": 2}).json()
    a_second_later = datetime.fromisoformat(newest_before) + timedelta(seconds=1)
    since = a_second_later.isoformat()  # any ISO 8601 form, not only the Z suffix
    recent = items(leads(sim, updated_since=since))
    assert {lead["LeadId"] for lead in recent} == set(mutated["changed"] + mutated["added"])
    assert all(lead["UpdatedAt"] > newest_before for lead in recent)
    assert [lead["LeadId"] for lead in recent] == sorted(lead["LeadId"] for lead in recent)
    assert items(leads(sim, updated_since="2027-01-01T00:00:00Z")) == []
    assert leads(sim, updated_since="yesterday").status_code == 400


# -- faults ----------------------------------------------------------------------------------


def test_fail_next_fails_exactly_that_many_requests_and_spares_the_control_api(sim):
    set_faults(sim, fail_next=2)
    first = stock(sim, page_size=1)
    assert (first.status_code, first.json()) == (503, {"error": "simulated outage"})
    assert sim.get("/_sim/faults").json()["fail_next"] == 1  # /_sim is never faulted
    assert stock(sim, page_size=1).status_code == 503
    assert stock(sim, page_size=1).status_code == 200
    assert served(sim) == {(STOCK_PATH, 503): 2, (STOCK_PATH, 200): 1}


def test_down_fails_every_request_until_cleared(sim):
    set_faults(sim, down=True)
    assert [stock(sim, page_size=1).status_code for _ in range(4)] == [503] * 4
    assert leads(sim, page_size=1).status_code == 503
    sim.delete("/_sim/faults").raise_for_status()
    assert stock(sim, page_size=1).status_code == 200


def test_rate_limit_answers_429_with_retry_after(sim):
    set_faults(sim, rate_limit_next=1, retry_after=2)
    limited = stock(sim, page_size=1)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert stock(sim, page_size=1).status_code == 200
    assert served(sim)[(STOCK_PATH, 429)] == 1


def test_a_truncated_body_is_half_the_json_with_a_matching_length(sim):
    full = stock(sim, page_size=20).content
    set_faults(sim, truncate_next=1)
    cut = stock(sim, page_size=20)
    assert cut.status_code == 200
    assert cut.content == full[: len(full) // 2]
    assert int(cut.headers["content-length"]) == len(cut.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    assert stock(sim, page_size=20).content == full


def test_truncation_spares_error_responses_and_cuts_the_next_success(sim):
    set_faults(sim, truncate_next=1)
    refused = sim.get(STOCK_PATH)
    assert refused.json() == {"error": "invalid or missing X-Api-Key"}  # a 401 is not cut
    with pytest.raises(json.JSONDecodeError):
        json.loads(stock(sim, page_size=3).content)


def test_error_rate_is_seeded_so_a_run_repeats(sim):
    def statuses() -> list[int]:
        set_faults(sim, error_rate=0.5)
        return [stock(sim, page_size=1).status_code for _ in range(30)]

    first = statuses()
    assert set(first) == {200, 503}
    assert statuses() == first
    sim.post("/_sim/reset", json=RESET)
    assert statuses() == first


def test_latency_delays_every_source_request(sim):
    set_faults(sim, latency_ms=300)
    started = time.monotonic()
    assert stock(sim, page_size=1).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    sim.get("/_sim/stats")
    assert time.monotonic() - started < 0.3


def test_a_hang_outlasts_a_client_timeout(sim):
    set_faults(sim, hang_next=1, hang_seconds=3)
    with pytest.raises(httpx.ReadTimeout):
        sim.get(STOCK_PATH, params={"page_size": 1}, headers=HEADERS, timeout=0.3)
    started = time.monotonic()
    assert stock(sim, page_size=1).status_code == 200
    assert time.monotonic() - started < 1  # only the next request hangs
    assert served(sim)[(STOCK_PATH, 499)] == 1  # counted as the client hanging up


def test_a_dropped_key_leaves_full_responses_but_not_listings(sim):
    set_faults(sim, drop_keys=[{"key": "STK000010", "times": 1}])
    listed = {item["StockNumber"] for item in items(stock(sim, fields="StockNumber"))}
    assert "STK000010" in listed  # and the listing did not use the drop up
    first = stock(sim)
    assert "STK000010" not in by_key(first)
    assert first.json()["total"] == STOCK and len(first.json()["items"]) == STOCK - 1
    assert "STK000010" in by_key(stock(sim))  # one time only


def test_a_drop_is_used_up_only_by_the_page_that_holds_the_record(sim):
    set_faults(sim, drop_keys=[{"key": "STK000070", "times": 1}])
    page_one = by_key(stock(sim, page=1, page_size=50))
    page_two = by_key(stock(sim, page=2, page_size=50))
    assert len(page_one) == 50 and "STK000070" not in page_two and len(page_two) == 49
    assert "STK000070" in by_key(stock(sim, page=2, page_size=50))


def test_a_key_dropped_always_is_gone_from_listings_too(sim):
    set_faults(sim, drop_keys=[{"key": "STK000010", "times": -1}, {"key": "5", "times": -1}])
    for _ in range(2):
        assert "STK000010" not in by_key(stock(sim))
        listing = stock(sim, fields="StockNumber").json()
        assert {"StockNumber": "STK000010"} not in listing["items"]
        assert listing["total"] == STOCK - 1
    assert 5 not in {lead["LeadId"] for lead in items(leads(sim))}


def test_counters_are_consumed_exactly_under_concurrent_requests(sim):
    set_faults(sim, fail_next=10)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: stock(sim, page_size=1).status_code, range(40)))
    assert statuses.count(503) == 10 and statuses.count(200) == 30


def test_reset_clears_faults_and_stats(sim):
    set_faults(sim, down=True, drop_keys=[{"key": "STK000001", "times": -1}])
    stock(sim)
    sim.post("/_sim/reset", json=RESET).raise_for_status()
    assert sim.get("/_sim/faults").json() == {
        "error_rate": 0.0, "fail_next": 0, "down": False, "rate_limit_next": 0,
        "rate_limit_rate": 0.0, "retry_after": 1.0, "truncate_next": 0, "truncate_rate": 0.0,
        "latency_ms": 0, "slow_rate": 0.0, "slow_ms": 1000, "hang_next": 0, "hang_rate": 0.0,
        "hang_seconds": 30.0, "drop_keys": [], "paths": [],
    }  # fmt: skip
    assert served(sim) == {}
    assert set(sim.get("/_sim/stats").json()["faults"].values()) == {0}
    assert len(items(stock(sim))) == STOCK


def test_a_plan_limited_to_some_paths_leaves_the_others_untouched(sim):
    set_faults(sim, fail_next=1, paths=["/erp/"])
    assert stock(sim).status_code == 200  # the dealer API is not in the plan's paths …
    assert sim.get("/_sim/faults").json()["fail_next"] == 1  # … and used up nothing
    assert sim.post("/erp/api/v1/login", json={}).status_code == 503


def test_a_misspelt_fault_is_refused_rather_than_ignored(sim):
    response = sim.post("/_sim/faults", json={"fail_nxt": 1})
    assert response.status_code == 400 and "fail_nxt" in response.json()["error"]


# -- control API: changing the data ----------------------------------------------------------


def test_stock_mutation_changes_adds_and_removes_deterministically(sim):
    before = by_key(stock(sim))
    newest_before = max(item["LastUpdated"] for item in before.values())
    result = sim.post("/_sim/dealer/mutate", json={"change": 3, "add": 2, "remove": 4}).json()
    after = by_key(stock(sim))
    changed, added, removed = set(result["changed"]), result["added"], set(result["removed"])
    assert (len(changed), len(removed)) == (3, 4) and not changed & removed
    assert added == [f"STK{STOCK:06d}", f"STK{STOCK + 1:06d}"]
    assert set(after) == (set(before) - removed) | set(added)
    for key in changed:
        assert after[key]["Price"] != before[key]["Price"]
        assert after[key]["LastUpdated"] > newest_before
        assert {k: v for k, v in after[key].items() if k not in ("Price", "LastUpdated")} == {
            k: v for k, v in before[key].items() if k not in ("Price", "LastUpdated")
        }
    untouched = set(before) - changed - removed
    assert all(after[key] == before[key] for key in untouched)
    later = sim.post("/_sim/dealer/mutate", json={"change": 1}).json()["changed"][0]
    assert by_key(stock(sim))[later]["LastUpdated"] > after[min(changed)]["LastUpdated"]
    sim.post("/_sim/reset", json=RESET)
    again = sim.post("/_sim/dealer/mutate", json={"change": 3, "add": 2, "remove": 4}).json()
    assert again == result


def test_new_stock_numbers_come_after_the_highest_ever_served(sim):
    assert sim.delete(f"/_sim/dealer/stock/STK{STOCK - 1:06d}").status_code == 200
    added = sim.post("/_sim/dealer/mutate", json={"add": 1}).json()["added"]
    assert added == [f"STK{STOCK:06d}"]  # the removed number is not reused
    sim.put("/_sim/dealer/stock/STK000500", json={"StockNumber": "STK000500"})
    assert sim.post("/_sim/dealer/mutate", json={"add": 1}).json()["added"] == ["STK000501"]


def test_lead_mutation_changes_status_and_adds_leads(sim):
    before = {lead["LeadId"]: lead for lead in items(leads(sim))}
    result = sim.post("/_sim/dealer/leads/mutate", json={"change": 3, "add": 2}).json()
    after = {lead["LeadId"]: lead for lead in items(leads(sim))}
    assert result["added"] == [LEADS + 1, LEADS + 2] and len(result["changed"]) == 3
    for lead_id in result["changed"]:
        assert after[lead_id]["Status"] != before[lead_id]["Status"]
        assert after[lead_id]["UpdatedAt"] > max(lead["UpdatedAt"] for lead in before.values())
    assert set(after) == set(before) | set(result["added"])


def test_planted_records_are_served_verbatim_and_can_be_removed(sim):
    malformed = {"StockNumber": "STK000005", "VIN": "NOT-A-VIN", "Price": "abc"}
    assert sim.put("/_sim/dealer/stock/STK000005", json=malformed).status_code == 200
    assert by_key(stock(sim))["STK000005"] == malformed
    assert sim.delete("/_sim/dealer/stock/STK000005").status_code == 200
    assert "STK000005" not in by_key(stock(sim)) and stock(sim).json()["total"] == STOCK - 1
    assert sim.delete("/_sim/dealer/stock/STK000005").status_code == 404

    bad_lead = {"LeadId": 7, "UpdatedAt": "not a time"}
    sim.put("/_sim/dealer/leads/7", json=bad_lead).raise_for_status()
    recent = items(leads(sim, updated_since="2027-01-01T00:00:00Z"))
    assert recent == [bad_lead]  # served whatever the cursor, so it gets quarantined
    sim.delete("/_sim/dealer/leads/7").raise_for_status()
    assert 7 not in {lead["LeadId"] for lead in items(leads(sim))}
