"""The simulator over real loopback HTTP, one server per test module; each test starts from
its module's `RESET` body (seed, sizes), with no faults and no statistics."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sync_platform_simulator import SimulatorServer


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(seed=42) as running:
        yield running


@pytest.fixture
def sim(server: SimulatorServer, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A client of the module's simulator, reset with the module's RESET."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/_sim/reset", json=request.module.RESET).raise_for_status()
        yield client
