"""Planted drift: the dealer changes its own data behind the warehouse's back, and the control
call answers with the exact key of what it changed, so a reconciliation test can check that
every difference is found and classified, and nothing else.

Drawn from an RNG seeded from the request's seed (not the dealer's), so the same drift on the
same data changes the same records, whatever mutations came before. Each record takes part in
at most one kind of change, so the answer key is unambiguous. Every change is stamped by the
simulated clock, as the dealer's own edits are; the answer key lists the fields changed
besides that timestamp.
"""

from __future__ import annotations

import random

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from sync_platform_simulator.dealer import (
    BODIES,
    COLOURS,
    LOCATIONS,
    VEHICLE_STATUSES,
    Dealer,
    DealerData,
    iso,
)

# Field → the values it takes; a cosmetic edit changes one to three of them.
COSMETIC = {"BodyType": BODIES, "Colour": COLOURS, "Location": LOCATIONS}
EDITABLE = {**COSMETIC, "Status": VEHICLE_STATUSES}


class StockDrift(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cosmetic: int = Field(
        default=0, ge=0, description="vehicles whose BodyType/Colour/Location change"
    )
    price: int = Field(default=0, ge=0, description="vehicles repriced")
    status: int = Field(default=0, ge=0, description="vehicles moved to another Status")
    delete: int = Field(default=0, ge=0, description="vehicles removed")
    insert: int = Field(default=0, ge=0, description="new vehicles")


class LeadDrift(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: int = Field(default=0, ge=0, description="leads moved to another Status")
    delete: int = Field(default=0, ge=0, description="leads removed")
    insert: int = Field(default=0, ge=0, description="new leads")


class Drift(BaseModel):
    """The body of `POST /_sim/dealer/drift`. Counts above what there is are capped (the
    answer key says what was done)."""

    model_config = ConfigDict(extra="forbid")

    seed: int
    stock: StockDrift = Field(default_factory=StockDrift)
    leads: LeadDrift = Field(default_factory=LeadDrift)


class VehicleEdit(BaseModel):
    key: str
    fields: list[str]


class LeadEdit(BaseModel):
    key: int
    fields: list[str]


class StockAnswer(BaseModel):
    cosmetic: list[VehicleEdit]
    price: list[VehicleEdit]
    status: list[VehicleEdit]
    deleted: list[str]
    inserted: list[str]


class LeadAnswer(BaseModel):
    status: list[LeadEdit]
    deleted: list[int]
    inserted: list[int]


class AnswerKey(BaseModel):
    """What a drift changed, by kind, keys in order; `fields` in the API's field names."""

    seed: int
    stock: StockAnswer
    leads: LeadAnswer


def _edit_vehicle(
    dealer: DealerData, key: str, names: list[str], rng: random.Random, now: str
) -> VehicleEdit:
    """Give each named field of a vehicle another of its values."""
    vehicle = dealer.stock[key]
    changes = {
        name: rng.choice([value for value in EDITABLE[name] if value != vehicle.get(name)])
        for name in names
    }
    dealer.put_stock(key, vehicle | changes | {"LastUpdated": now})
    return VehicleEdit(key=key, fields=names)


def _drift_stock(dealer: DealerData, drift: StockDrift, rng: random.Random) -> StockAnswer:
    """Reprice, delete and insert through `mutate_stock`, then edit others than those."""
    before = sorted(dealer.stock)
    mutated = dealer.mutate_stock(drift.price, drift.insert, drift.delete, rng=rng)
    now = iso(dealer.clock)
    untouched = sorted(set(before) - set(mutated["changed"]) - set(mutated["removed"]))
    picked = rng.sample(untouched, min(drift.cosmetic + drift.status, len(untouched)))
    cosmetic = [
        _edit_vehicle(
            dealer, key, sorted(rng.sample(list(COSMETIC), rng.randint(1, len(COSMETIC)))), rng, now
        )
        for key in sorted(picked[: drift.cosmetic])
    ]
    status = [
        _edit_vehicle(dealer, key, ["Status"], rng, now) for key in sorted(picked[drift.cosmetic :])
    ]
    return StockAnswer(
        cosmetic=cosmetic,
        price=[VehicleEdit(key=key, fields=["Price"]) for key in mutated["changed"]],
        status=status,
        deleted=mutated["removed"],
        inserted=mutated["added"],
    )


def _drift_leads(dealer: DealerData, drift: LeadDrift, rng: random.Random) -> LeadAnswer:
    """Move leads to another Status and insert through `mutate_leads`, then delete others."""
    mutated = dealer.mutate_leads(drift.status, drift.insert, rng=rng)
    untouched = sorted(set(dealer.leads) - set(mutated["changed"]) - set(mutated["added"]))
    deleted = sorted(rng.sample(untouched, min(drift.delete, len(untouched))))
    for lead_id in deleted:
        dealer.delete_lead(lead_id)
    return LeadAnswer(
        status=[LeadEdit(key=key, fields=["Status"]) for key in mutated["changed"]],
        deleted=deleted,
        inserted=mutated["added"],
    )


def plant_drift(dealer: DealerData, drift: Drift) -> AnswerKey:
    """Apply `drift` to the dealer's data in one step (no read sees half of it)."""
    rng = random.Random(f"dealer-drift:{drift.seed}")
    with dealer.lock:
        stock = _drift_stock(dealer, drift.stock, rng)
        leads = _drift_leads(dealer, drift.leads, rng)
    return AnswerKey(seed=drift.seed, stock=stock, leads=leads)


control_router = APIRouter(prefix="/_sim/dealer")


@control_router.post("/drift", summary="Plant drift in the dealer's data, with its answer key")
def post_drift(body: Drift, dealer: Dealer) -> AnswerKey:
    """Edit, reprice, move, delete and insert vehicles and leads as asked, deterministically
    for the seed, and say exactly which records and fields changed."""
    return plant_drift(dealer, body)
