"""Rated faults (`error_rate`, `rate_limit_rate`, `truncate_rate`, `slow_rate`, `hang_rate`)
over real loopback HTTP: one seeded draw per source request picks at most one of them, each
behaves on the wire as documented, a run repeats for the same seed, and /_sim is spared."""

from __future__ import annotations

import json
import math
import time
from collections import Counter

import httpx
import pytest

from sync_platform_simulator import FaultInjector, FaultPlan
from sync_platform_simulator.faults import FaultKind

SEED = 42
RESET = {"seed": SEED, "dealer": {"stock": 20, "leads": 5}}
HEADERS = {"X-Api-Key": "sim-dealer-key"}
STOCK_PATH = "/dealer/api/v1/stock"
KINDS = ["errored", "rate_limited", "truncated", "slowed", "hung"]
RATES = ["error_rate", "rate_limit_rate", "truncate_rate", "slow_rate", "hang_rate"]
# 35% of requests faulted; slows and hangs tiny so 1000 requests stay fast.
MIX = {
    "error_rate": 0.1,
    "rate_limit_rate": 0.1,
    "truncate_rate": 0.05,
    "slow_rate": 0.05,
    "hang_rate": 0.05,
    "slow_ms": 1,
    "hang_seconds": 0.001,
    "retry_after": 0.5,
}


def stock(client: httpx.Client, **kwargs) -> httpx.Response:
    return client.get(STOCK_PATH, params={"page_size": 5}, headers=HEADERS, **kwargs)


def set_faults(client: httpx.Client, **plan) -> None:
    client.post("/_sim/faults", json=plan).raise_for_status()


def faults(client: httpx.Client) -> dict[str, int]:
    return client.get("/_sim/stats").json()["faults"]


def served(client: httpx.Client) -> dict[tuple[str, int], int]:
    rows = client.get("/_sim/stats").json()["requests"]
    return {(row["path"], row["status"]): row["count"] for row in rows}


def outcome(response: httpx.Response) -> str:
    """What the client saw: a 503, a 429, a cut body or a good answer."""
    if response.status_code == 503:
        assert response.json() == {"error": "simulated outage"}
        return "errored"
    if response.status_code == 429:
        assert response.json() == {"error": "rate limited"}
        assert response.headers["Retry-After"] == "0.5"
        return "rate_limited"
    assert response.status_code == 200, response.text
    assert int(response.headers["content-length"]) == len(response.content)
    try:
        json.loads(response.content)
    except json.JSONDecodeError:
        return "truncated"
    return "ok"


def run(client: httpx.Client, n: int, seed: int = SEED) -> tuple[list[str], dict[str, int]]:
    """Reset to `seed`, set the mix and make n source requests in order."""
    client.post("/_sim/reset", json={**RESET, "seed": seed}).raise_for_status()
    set_faults(client, **MIX)
    return [outcome(stock(client)) for _ in range(n)], faults(client)


def test_a_mix_of_rates_faults_its_share_of_1000_requests(sim):
    seen, counted = run(sim, 1000)
    n = len(seen)
    for kind, rate in zip(KINDS, RATES, strict=True):
        expected = n * MIX[rate]
        spread = 4 * math.sqrt(expected * (1 - expected / n))  # 4 binomial deviations
        assert abs(counted[kind] - expected) <= spread, (kind, counted[kind], expected)
    assert abs(sum(counted.values()) - 0.35 * n) <= 4 * math.sqrt(n * 0.35 * 0.65)
    # What the stats count is what went over the wire.
    on_the_wire = Counter(seen)
    for kind in ("errored", "rate_limited", "truncated"):
        assert on_the_wire[kind] == counted[kind]
    assert served(sim) == {
        (STOCK_PATH, 200): on_the_wire["ok"] + on_the_wire["truncated"],
        (STOCK_PATH, 429): on_the_wire["rate_limited"],
        (STOCK_PATH, 503): on_the_wire["errored"],
    }


def test_the_same_seed_and_request_order_repeat_the_same_faults(sim):
    first = run(sim, 100)
    assert set(first[0]) == {"ok", "errored", "rate_limited", "truncated"}
    assert run(sim, 100) == first
    set_faults(sim, **MIX)  # setting a plan again restarts the draws (stats go on)
    assert [outcome(stock(sim)) for _ in range(100)] == first[0]
    assert faults(sim) == {kind: 2 * n for kind, n in first[1].items()}
    assert run(sim, 100, seed=7)[0] != first[0]


def test_every_request_draws_once_so_a_kinds_sequence_repeats_exactly():
    plan = FaultPlan(**{rate: MIX[rate] for rate in RATES})

    def kinds(seed: int) -> list[FaultKind | None]:
        injector = FaultInjector(seed)
        injector.replace(plan)
        return [injector.draw() for _ in range(2000)]

    first = kinds(SEED)
    assert first == kinds(SEED)
    assert first != kinds(7)
    share = Counter(first)
    assert set(share) == {None, *FaultKind}
    assert abs(share[None] / 2000 - 0.65) < 0.05


def test_rate_limit_rate_answers_429_with_retry_after(sim):
    set_faults(sim, rate_limit_rate=1, retry_after=1.5)
    for _ in range(3):
        limited = stock(sim)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1.5"
        assert limited.json() == {"error": "rate limited"}
    assert faults(sim)["rate_limited"] == 3


def test_error_rate_answers_503(sim):
    set_faults(sim, error_rate=1)
    assert [outcome(stock(sim)) for _ in range(3)] == ["errored"] * 3
    assert faults(sim)["errored"] == 3


def test_truncate_rate_cuts_successful_bodies_in_half_and_spares_errors(sim):
    full = stock(sim).content
    set_faults(sim, truncate_rate=1)
    cut = stock(sim)
    assert cut.status_code == 200 and cut.content == full[: len(full) // 2]
    assert int(cut.headers["content-length"]) == len(cut.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    refused = sim.get(STOCK_PATH)  # no API key: a 401, not cut and not counted
    assert refused.json() == {"error": "invalid or missing X-Api-Key"}
    assert faults(sim)["truncated"] == 1


def test_slow_rate_delays_by_slow_ms(sim):
    set_faults(sim, slow_rate=1, slow_ms=300)
    started = time.monotonic()
    assert outcome(stock(sim)) == "ok"
    assert time.monotonic() - started >= 0.3
    assert faults(sim) == {**dict.fromkeys(KINDS, 0), "slowed": 1}


def test_hang_rate_stalls_past_a_client_timeout(sim):
    set_faults(sim, hang_rate=1, hang_seconds=3)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        stock(sim, timeout=0.3)
    assert time.monotonic() - started < 2  # the stall ends when the client hangs up
    deadline = time.monotonic() + 2
    while served(sim).get((STOCK_PATH, 499)) != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert served(sim) == {(STOCK_PATH, 499): 1}
    assert faults(sim)["hung"] == 1
    set_faults(sim, hang_rate=1, hang_seconds=0.2)  # a patient client gets its answer
    started = time.monotonic()
    assert outcome(stock(sim)) == "ok"
    assert time.monotonic() - started >= 0.2


def test_counters_take_precedence_over_a_drawn_fault(sim):
    set_faults(sim, fail_next=2, rate_limit_rate=1, retry_after=0.5)
    assert [outcome(stock(sim)) for _ in range(4)] == ["errored"] * 2 + ["rate_limited"] * 2
    assert faults(sim) == {**dict.fromkeys(KINDS, 0), "errored": 2, "rate_limited": 2}


def test_rates_adding_up_to_more_than_one_are_refused(sim):
    set_faults(sim, error_rate=0.2)
    refused = sim.post(
        "/_sim/faults", json={"error_rate": 0.5, "rate_limit_rate": 0.3, "hang_rate": 0.3}
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert all(name in error for name in ("error_rate", "rate_limit_rate", "hang_rate"))
    assert sim.get("/_sim/faults").json()["error_rate"] == 0.2  # the old plan stands
    one_rate = sim.post("/_sim/faults", json={"slow_rate": 1.5})
    assert one_rate.status_code == 400 and "slow_rate" in one_rate.json()["error"]
    exactly_one = {"error_rate": 0.1, "rate_limit_rate": 0.2, "truncate_rate": 0.7}
    assert sim.post("/_sim/faults", json=exactly_one).status_code == 200  # not 1.0000000002


def test_the_control_api_is_never_faulted_and_draws_nothing(sim):
    set_faults(sim, hang_rate=1, hang_seconds=5)
    started = time.monotonic()
    for _ in range(5):
        assert sim.get("/_sim/faults").status_code == 200
        assert sim.get("/_sim/stats").status_code == 200
        assert sim.post("/_sim/dealer/mutate", json={"change": 1}).status_code == 200
    assert time.monotonic() - started < 2
    assert faults(sim)["hung"] == 0 and served(sim) == {}

    everything = {"error_rate": 0.5, "rate_limit_rate": 0.5, "retry_after": 0.5}
    set_faults(sim, **everything)
    alone = [outcome(stock(sim)) for _ in range(30)]
    set_faults(sim, **everything)
    between = []
    for _ in range(30):
        assert sim.get("/_sim/stats").status_code == 200
        assert sim.post("/_sim/dealer/leads/mutate", json={"add": 1}).status_code == 200
        between.append(outcome(stock(sim)))
    assert between == alone  # control calls in between did not use up draws
    assert set(alone) == {"errored", "rate_limited"}
    assert not any(path.startswith("/_sim") for path, _ in served(sim))
