"""The source simulator as one FastAPI app: every source's wire format on loopback, seeded
and deterministic, with fault injection set per run over the control API (/_sim).

Demo, tests and benchmarks talk to it over real HTTP; production code differs only in base
URLs and credentials. Each source module contributes a `router` (its API, under its own
prefix) and a `control_router` (its part of /_sim); this module adds the shared control API
(reset, faults, stats) and the fault middleware. The OpenAPI schema is served under /_sim
too (`/_sim/openapi.json`), never at a path a provider might own.
Reference: docs/sources/dealer_feed_api.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync_platform_simulator import (
    dealer,
    dealer_drift,
    dealer_writes,
    ga4,
    google_oauth,
    legacy_erp,
    n8n,
    sheets,
)
from sync_platform_simulator.faults import CONTROL_PREFIX, FaultMiddleware, FaultPlan
from sync_platform_simulator.state import SimulatorSettings, SimulatorState, simulator_state

State = Annotated[SimulatorState, Depends(simulator_state)]
control_router = APIRouter(prefix=CONTROL_PREFIX)


@control_router.post("/reset")
def reset(state: State, settings: Annotated[SimulatorSettings | None, Body()] = None) -> Any:
    """Regenerate everything from the seed; clear faults and statistics."""
    state.reset(settings or SimulatorSettings())
    return {
        "seed": state.seed,
        "dealer": {"stock": len(state.dealer.stock), "leads": len(state.dealer.leads)},
    }


@control_router.get("/faults")
def get_faults(state: State) -> FaultPlan:
    return state.faults.snapshot()


@control_router.post("/faults")
def set_faults(plan: FaultPlan, state: State) -> FaultPlan:
    state.faults.replace(plan)
    return state.faults.snapshot()


@control_router.delete("/faults")
def clear_faults(state: State) -> FaultPlan:
    state.faults.replace(FaultPlan())
    return state.faults.snapshot()


@control_router.get("/stats")
def stats(state: State) -> dict[str, Any]:
    """Source requests served by (path, status), and the faults injected by kind."""
    return {"requests": state.stats.rows(), "faults": state.stats.faults()}


async def _error_body(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Every error as `{"error": ...}`, as the sources' clients expect."""
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """A malformed query or body is a 400 in the same shape, not FastAPI's 422."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return JSONResponse({"error": f"invalid request: {problems}"}, status_code=400)


def create_app(state: SimulatorState | None = None) -> FastAPI:
    """The simulator app serving `state` (a fresh default state if none is given)."""
    state = state or SimulatorState()
    app = FastAPI(
        title="sync-platform source simulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{CONTROL_PREFIX}/openapi.json",
    )
    app.state.simulator = state
    app.add_exception_handler(StarletteHTTPException, _error_body)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.include_router(control_router)
    app.include_router(dealer.router)
    app.include_router(dealer.control_router)
    app.include_router(dealer_writes.router)
    app.include_router(dealer_writes.control_router)
    app.include_router(dealer_drift.control_router)
    app.include_router(legacy_erp.router)
    app.include_router(legacy_erp.control_router)
    app.include_router(sheets.router)
    app.include_router(sheets.control_router)
    app.include_router(google_oauth.router)
    app.include_router(google_oauth.control_router)
    app.include_router(ga4.router)
    app.include_router(ga4.control_router)
    app.include_router(n8n.router)
    app.include_router(n8n.control_router)
    app.add_middleware(FaultMiddleware, faults=state.faults, stats=state.stats)
    return app
