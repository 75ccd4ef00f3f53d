"""The simulator serves deterministic data and exactly the faults it is told to."""

from __future__ import annotations

import httpx

from sync_platform.simulator.server import SimulatorServer

HEADERS = {"X-Api-Key": "sim-dealer-key"}


def get(simulator, path: str, **params) -> httpx.Response:
    return httpx.get(f"{simulator.url}/dealer/api/v1/{path}", params=params, headers=HEADERS)


def test_same_seed_same_bytes_other_seed_other_data(simulator):
    with SimulatorServer(seed=42) as twin:
        httpx.post(
            f"{twin.url}/_sim/reset", json={"seed": 42, "dealer": {"stock": 200, "leads": 100}}
        )
        a = get(simulator, "stock", page_size=1000).content
        b = httpx.get(
            f"{twin.url}/dealer/api/v1/stock", params={"page_size": 1000}, headers=HEADERS
        ).content
        assert a == b
        httpx.post(
            f"{twin.url}/_sim/reset", json={"seed": 7, "dealer": {"stock": 200, "leads": 100}}
        )
        c = httpx.get(
            f"{twin.url}/dealer/api/v1/stock", params={"page_size": 1000}, headers=HEADERS
        ).content
        assert c != a


def test_paging_envelope_and_sparse_listing(simulator):
    first = get(simulator, "stock", page=1, page_size=75).json()
    last = get(simulator, "stock", page=3, page_size=75).json()
    assert (first["total"], first["total_pages"], len(first["items"]), len(last["items"])) == (
        200,
        3,
        75,
        50,
    )
    listing = get(simulator, "stock", page=1, page_size=1000, fields="StockNumber").json()["items"]
    assert listing[0] == {"StockNumber": "STK000000"} and len(listing) == 200
    assert get(simulator, "stock", page_size=5000).status_code == 400
    assert httpx.get(f"{simulator.url}/dealer/api/v1/stock").status_code == 401


def test_updated_since_returns_only_newer_leads(simulator):
    changed = simulator.mutate_leads(change=2, add=1)
    newest = max(
        lead["UpdatedAt"] for lead in get(simulator, "leads", page_size=1000).json()["items"]
    )
    recent = get(simulator, "leads", updated_since=newest, page_size=1000).json()["items"]
    assert sorted(lead["LeadId"] for lead in recent) == sorted(
        changed["changed"] + changed["added"]
    )


def test_a_dropped_key_leaves_full_responses_not_listings(simulator):
    simulator.faults(drop_keys=[{"key": "STK000010", "times": 1}])
    full = {i["StockNumber"] for i in get(simulator, "stock", page_size=1000).json()["items"]}
    listed = {
        i["StockNumber"]
        for i in get(simulator, "stock", page_size=1000, fields="StockNumber").json()["items"]
    }
    again = {i["StockNumber"] for i in get(simulator, "stock", page_size=1000).json()["items"]}
    assert "STK000010" not in full and "STK000010" in listed and "STK000010" in again


def test_truncated_body_is_invalid_json_with_a_matching_length(simulator):
    simulator.faults(truncate_next=1)
    response = get(simulator, "stock", page_size=10)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    try:
        response.json()
    except ValueError:
        pass
    else:
        raise AssertionError("the body should be cut short")
    assert get(simulator, "stock", page_size=10).json()["items"]


def test_mutation_is_deterministic_and_moves_the_clock(simulator):
    before = {i["StockNumber"]: i for i in get(simulator, "stock", page_size=1000).json()["items"]}
    changed = simulator.mutate_stock(change=3, add=2, remove=1)
    after = {i["StockNumber"]: i for i in get(simulator, "stock", page_size=1000).json()["items"]}
    assert len(after) == 201
    for key in changed["changed"]:
        assert after[key]["LastUpdated"] > before[key]["LastUpdated"]
    simulator.reset()
    assert simulator.mutate_stock(change=3, add=2, remove=1) == changed
