"""n8n's part of the simulator's control API, under `/_sim/n8n`: send, list executions
and deliveries, prune, the rate limit, the clock, the environment, reset."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from sync_platform_simulator.n8n.instance import N8nData
from sync_platform_simulator.n8n.models import (
    ApiRateLimit,
    N8nSettings,
    PruneRequest,
    SendReport,
    SendRequest,
    iso_ms,
)
from sync_platform_simulator.n8n.public_api import N8n

control_router = APIRouter(prefix="/_sim/n8n")


class ClockAdvance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advance_seconds: float = Field(ge=0)


@control_router.post("/send")
async def send(plan: SendRequest, n8n: N8n) -> SendReport:
    """Run executions of one workflow and deliver their webhooks to `target`."""
    if plan.workflow_key not in n8n.workflows:
        raise HTTPException(400, detail=f"no simulated n8n workflow {plan.workflow_key!r}")
    try:
        n8n.planned_workflow(plan)
    except ValueError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    return await n8n.send(plan)


@control_router.get("/executions")
def executions(n8n: N8n) -> list[dict[str, Any]]:
    """Every kept execution, newest first, with what happened to its webhooks."""
    with n8n.lock:
        return [n8n.control_view(e) for e in n8n.executions()]


@control_router.get("/deliveries")
def deliveries(n8n: N8n, workflow_key: str | None = None) -> dict[str, Any]:
    """Per workflow, since the reset: executions by how they ended and every delivery id by
    what became of it (sent, delivered, dropped, duplicated, failed, not_sent)."""
    if workflow_key is not None and workflow_key not in n8n.workflows:
        raise HTTPException(400, detail=f"no simulated n8n workflow {workflow_key!r}")
    return n8n.deliveries(workflow_key)


@control_router.post("/prune")
def prune(chosen: PruneRequest, n8n: N8n) -> dict[str, Any]:
    """Prune executions as n8n's pruning would: now, or right after the next list."""
    if chosen.workflow_key is not None and chosen.workflow_key not in n8n.workflows:
        raise HTTPException(400, detail=f"no simulated n8n workflow {chosen.workflow_key!r}")
    if chosen.when == "after_next_list":
        n8n.arm_prune(chosen)
        return {"pruned": [], "skipped": [], "armed": True}
    pruned, skipped = n8n.prune_chosen(chosen)
    return {"pruned": pruned, "skipped": skipped, "armed": False}


@control_router.post("/rate-limit")
def set_rate_limit(limit: ApiRateLimit, n8n: N8n) -> dict[str, Any]:
    """Turn on the public API's read limit per API key (a fresh window for every key)."""
    n8n.set_rate_limit(limit)
    return {"rate_limit": limit.model_dump()}


@control_router.delete("/rate-limit")
def clear_rate_limit(n8n: N8n) -> dict[str, Any]:
    """Turn the rate limit off (n8n's default)."""
    n8n.set_rate_limit(None)
    return {"rate_limit": None}


@control_router.post("/clock")
def advance_clock(advance: ClockAdvance, n8n: N8n) -> dict[str, Any]:
    """Move n8n's clock forward; executions past the retention are pruned."""
    now = n8n.advance(advance.advance_seconds)
    return {"now": iso_ms(now), "pruned": n8n.prune()}


@control_router.get("/environment")
def environment(n8n: N8n) -> dict[str, str]:
    """The platform's n8n variables for this simulator (secrets, workflow ids, API key)."""
    return n8n.environment()


@control_router.post("/reset")
def reset_n8n(request: Request, settings: N8nSettings | None = None) -> dict[str, Any]:
    """Forget every execution and start again from the simulator seed (and new settings)."""
    state = request.app.state.simulator
    settings = settings or N8nSettings()
    state.n8n = N8nData(state.seed, settings.model_copy(deep=True))
    state.settings.n8n = settings.model_copy(deep=True)
    return {"workflows": {w.key: w.id for w in settings.workflows}}
