"""The source simulator: one FastAPI app serving every source's wire format on loopback,
seeded and deterministic, with per-run fault injection. Demo, tests and benchmarks talk to
it over real HTTP; production code differs only in base URLs and credentials.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sync_platform.simulator import dealer
from sync_platform.simulator.faults import FaultInjector, FaultMiddleware, FaultPlan


class DealerSize(BaseModel):
    stock: int = Field(default=500, ge=0)
    leads: int = Field(default=200, ge=0)
    api_key: str = "sim-dealer-key"


class ResetRequest(BaseModel):
    seed: int = 42
    dealer: DealerSize = DealerSize()


class StockMutation(BaseModel):
    change: int = Field(default=0, ge=0)
    add: int = Field(default=0, ge=0)
    remove: int = Field(default=0, ge=0)


class LeadMutation(BaseModel):
    change: int = Field(default=0, ge=0)
    add: int = Field(default=0, ge=0)


@dataclass
class SimulatorState:
    seed: int = 42
    dealer: dealer.DealerData = field(default_factory=lambda: dealer.DealerData(42))
    faults: FaultInjector = field(default_factory=lambda: FaultInjector(42))
    stats: Counter = field(default_factory=Counter)

    def reset(self, request: ResetRequest) -> None:
        self.seed = request.seed
        self.dealer = dealer.DealerData(request.seed, **request.dealer.model_dump())
        self.faults.replace(FaultPlan(), seed=request.seed)
        self.stats.clear()


def _control_routes(app: FastAPI, state: SimulatorState) -> None:
    @app.post("/_sim/reset")
    def reset(request: ResetRequest | None = None) -> dict[str, Any]:
        state.reset(request or ResetRequest())
        return {
            "seed": state.seed,
            "stock": len(state.dealer.stock),
            "leads": len(state.dealer.leads),
        }

    @app.get("/_sim/faults")
    def get_faults() -> FaultPlan:
        return state.faults.plan

    @app.post("/_sim/faults")
    def set_faults(plan: FaultPlan) -> FaultPlan:
        state.faults.replace(plan)
        return state.faults.plan

    @app.delete("/_sim/faults")
    def clear_faults() -> FaultPlan:
        state.faults.replace(FaultPlan())
        return state.faults.plan

    @app.get("/_sim/stats")
    def stats() -> dict[str, Any]:
        rows = [
            {"path": path, "status": status, "count": count}
            for (path, status), count in sorted(state.stats.items())
        ]
        return {"requests": rows}

    @app.post("/_sim/dealer/mutate")
    def mutate_stock(change: StockMutation) -> dict[str, list[str]]:
        return state.dealer.mutate_stock(**change.model_dump())

    @app.post("/_sim/dealer/leads/mutate")
    def mutate_leads(change: LeadMutation) -> dict[str, list[int]]:
        return state.dealer.mutate_leads(**change.model_dump())

    @app.put("/_sim/dealer/stock/{stock_number}")
    def put_stock(stock_number: str, record: dict[str, Any]) -> dict[str, Any]:
        with state.dealer.lock:
            state.dealer.stock[stock_number] = record
        return record

    @app.delete("/_sim/dealer/stock/{stock_number}")
    def delete_stock(stock_number: str) -> dict[str, str]:
        with state.dealer.lock:
            if state.dealer.stock.pop(stock_number, None) is None:
                raise HTTPException(status_code=404, detail=f"no vehicle {stock_number}")
        return {"deleted": stock_number}

    @app.put("/_sim/dealer/leads/{lead_id}")
    def put_lead(lead_id: int, record: dict[str, Any]) -> dict[str, Any]:
        with state.dealer.lock:
            state.dealer.leads[lead_id] = record
        return record

    @app.delete("/_sim/dealer/leads/{lead_id}")
    def delete_lead(lead_id: int) -> dict[str, int]:
        with state.dealer.lock:
            if state.dealer.leads.pop(lead_id, None) is None:
                raise HTTPException(status_code=404, detail=f"no lead {lead_id}")
        return {"deleted": lead_id}


def create_app(state: SimulatorState | None = None) -> FastAPI:
    state = state or SimulatorState()
    app = FastAPI(title="sync_platform source simulator", docs_url=None, redoc_url=None)
    app.state.simulator = state

    @app.exception_handler(HTTPException)
    async def _error_body(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    app.include_router(dealer.router)
    _control_routes(app, state)
    app.add_middleware(FaultMiddleware, injector=state.faults, stats=state.stats)
    return app
