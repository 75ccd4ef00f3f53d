"""An EasyCars-style dealer API: paged stock (vehicles) and leads, seeded and deterministic.

Data comes from `random.Random`, seeded from the simulator seed, never the global RNG, so a
seed always serves the same bytes (planted drift draws from its own, seeded from its request).
Timestamps come from a simulated clock that starts at 2026-01-01T00:00:00Z: generated history
lies before it, and each change (a mutation, a drift, a write through the API) moves it one
minute forward, so a change is always newer than anything served before it.
The writes are in `dealer_writes.py`, planted drift in `dealer_drift.py`.
Reference: docs/sources/dealer_feed_api.md.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sync_platform_simulator.faults import FaultInjector, fault_injector

DEFAULT_API_KEY = "sim-dealer-key"
CLOCK_START = datetime(2026, 1, 1, tzinfo=UTC)
MAX_PAGE_SIZE = 1000
STOCK_NUMBER = re.compile(r"STK(\d+)")
VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q
MODELS = {
    "Toyota": ["Corolla", "Camry", "RAV4", "HiLux"],
    "Mazda": ["3", "CX-5", "BT-50"],
    "Ford": ["Ranger", "Focus", "Everest"],
    "Hyundai": ["i30", "Tucson", "Kona"],
    "Kia": ["Cerato", "Sportage", "Carnival"],
}
BADGES = [None, "Ascent", "Sport", "GX", "Titanium", "Active"]
COLOURS = ["White", "Black", "Silver", "Blue", "Red", "Grey"]
BODIES = ["Sedan", "Hatch", "SUV", "Ute", "Wagon"]
FUELS = ["Petrol", "Diesel", "Hybrid", "Electric"]
LOCATIONS = ["Parramatta", "Penrith", "Liverpool", "Blacktown"]
VEHICLE_STATUSES = ["Available", "Reserved", "Sold"]
LEAD_SOURCES = ["website", "carsales", "walk-in", "phone"]
LEAD_STATUSES = ["new", "contacted", "qualified", "won", "lost"]
FIRST_NAMES = ["Ava", "Noah", "Mia", "Liam", "Zoe", "Jack", "Ella", "Leo", "Ruby", "Max"]
LAST_NAMES = ["Nguyen", "Smith", "Patel", "Brown", "Chen", "Wilson", "Kelly", "Singh"]

Record = dict[str, Any]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 instant (naive means UTC), or None if it is not one."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class DealerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stock: int = Field(default=500, ge=0)
    leads: int = Field(default=200, ge=0)
    api_key: str = DEFAULT_API_KEY


class DealerData:
    """The simulated dealer's vehicles and leads. All writes go through these methods, under
    one lock, so the sorted views the routes page through are never stale."""

    def __init__(self, seed: int, settings: DealerSettings | None = None):
        settings = settings or DealerSettings()
        self.api_key = settings.api_key
        self.rng = random.Random(f"dealer:{seed}")
        self.clock = CLOCK_START
        self.lock = threading.RLock()
        self._stock: dict[str, Record] = {}
        self._leads: dict[int, Record] = {}
        self._next_stock_number = 0
        self._next_lead_id = 1
        self._stock_order: list[tuple[str, Record]] | None = None
        self._lead_order: list[tuple[str, datetime | None, Record]] | None = None
        # Every write accepted through the public API, oldest first (`GET /_sim/dealer/writes`).
        self.writes: list[Record] = []
        day = 60 * 24
        for _ in range(settings.stock):
            self._add_vehicle(
                CLOCK_START - timedelta(minutes=self.rng.randint(1, 90 * day)), self.rng
            )
        stock_numbers = list(self._stock)
        for _ in range(settings.leads):
            created = CLOCK_START - timedelta(minutes=self.rng.randint(60, 60 * day))
            updated = created + timedelta(minutes=self.rng.randint(0, 59))
            self._add_lead(created, updated, stock_numbers, self.rng)

    # -- reading -------------------------------------------------------------------------

    @property
    def stock(self) -> Mapping[str, Record]:
        return MappingProxyType(self._stock)

    @property
    def leads(self) -> Mapping[int, Record]:
        return MappingProxyType(self._leads)

    def ordered_stock(self) -> list[tuple[str, Record]]:
        """(StockNumber, record) by StockNumber; a snapshot, safe to page through unlocked."""
        with self.lock:
            if self._stock_order is None:
                self._stock_order = sorted(self._stock.items())
            return self._stock_order

    def ordered_leads(self) -> list[tuple[str, datetime | None, Record]]:
        """(LeadId as text, UpdatedAt parsed or None if malformed, record), ordered by
        (UpdatedAt, LeadId); a snapshot, safe to page through unlocked."""
        with self.lock:
            if self._lead_order is None:
                rows = sorted(
                    self._leads.items(),
                    key=lambda row: (str(row[1].get("UpdatedAt", "")), row[0]),
                )
                self._lead_order = [
                    (str(lead_id), parse_time(lead.get("UpdatedAt")), lead)
                    for lead_id, lead in rows
                ]
            return self._lead_order

    # -- generating ----------------------------------------------------------------------

    # Each takes the RNG to draw from: the dealer's own, or a drift's (seeded from its request).

    @staticmethod
    def _vin(rng: random.Random) -> str:
        return "".join(rng.choice(VIN_ALPHABET) for _ in range(17))

    @staticmethod
    def _price(rng: random.Random) -> float:
        return round(rng.uniform(5_000, 90_000), 2)

    def _add_vehicle(self, updated: datetime, rng: random.Random) -> str:
        number = f"STK{self._next_stock_number:06d}"
        self._next_stock_number += 1
        make = rng.choice(list(MODELS))
        self._stock[number] = {
            "StockNumber": number,
            "VIN": self._vin(rng),
            "Make": make,
            "Model": rng.choice(MODELS[make]),
            "Badge": rng.choice(BADGES),
            "Year": rng.randint(2005, 2026),
            "Odometer": rng.randint(0, 250_000),
            "Price": self._price(rng),
            "Status": rng.choices(VEHICLE_STATUSES, [8, 1, 1])[0],
            "Colour": rng.choice(COLOURS),
            "BodyType": rng.choice(BODIES),
            "FuelType": rng.choice(FUELS),
            "Transmission": rng.choice(["Automatic", "Manual"]),
            "Location": rng.choice(LOCATIONS),
            "LastUpdated": iso(updated),
        }
        return number

    def _add_lead(
        self, created: datetime, updated: datetime, stock_numbers: list[str], rng: random.Random
    ) -> int:
        lead_id = self._next_lead_id
        self._next_lead_id += 1
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        self._leads[lead_id] = {
            "LeadId": lead_id,
            "StockNumber": rng.choice(stock_numbers) if stock_numbers else None,
            "CustomerName": f"{first} {last}",
            "Email": f"{first}.{last}{lead_id}@example.com".lower(),
            "Phone": f"04{rng.randint(0, 99_999_999):08d}",
            "Source": rng.choice(LEAD_SOURCES),
            "Status": rng.choice(LEAD_STATUSES[:3]),
            "CreatedAt": iso(created),
            "UpdatedAt": iso(updated),
        }
        return lead_id

    # -- changing ------------------------------------------------------------------------

    def tick(self) -> datetime:
        """Move the clock one minute: the stamp of a change, newer than anything served."""
        with self.lock:
            self.clock += timedelta(minutes=1)
            return self.clock

    def mutate_stock(
        self, change: int = 0, add: int = 0, remove: int = 0, rng: random.Random | None = None
    ) -> dict[str, list[str]]:
        """Reprice `change` vehicles (always to another Price), add `add` new ones, remove
        `remove` others (never one just repriced), all stamped with one new clock minute;
        drawn from `rng` if given, else the dealer's own."""
        rng = rng or self.rng
        with self.lock:
            now = self.tick()
            keys = sorted(self._stock)
            changed = rng.sample(keys, min(change, len(keys)))
            for key in changed:
                old = self._stock[key].get("Price")
                while (price := self._price(rng)) == old:
                    pass
                self._stock[key] = self._stock[key] | {"Price": price, "LastUpdated": iso(now)}
            added = [self._add_vehicle(now, rng) for _ in range(add)]
            untouched = sorted(set(keys) - set(changed))
            removed = rng.sample(untouched, min(remove, len(untouched)))
            for key in removed:
                del self._stock[key]
            self._stock_order = None
            return {"changed": sorted(changed), "added": added, "removed": sorted(removed)}

    def mutate_leads(
        self, change: int = 0, add: int = 0, rng: random.Random | None = None
    ) -> dict[str, list[int]]:
        """Move `change` leads to another Status and add `add` new ones, at one new minute;
        drawn from `rng` if given, else the dealer's own."""
        rng = rng or self.rng
        with self.lock:
            now = self.tick()
            ids = sorted(self._leads)
            changed = rng.sample(ids, min(change, len(ids)))
            for lead_id in changed:
                lead = self._leads[lead_id]
                status = rng.choice([s for s in LEAD_STATUSES if s != lead.get("Status")])
                self._leads[lead_id] = lead | {"Status": status, "UpdatedAt": iso(now)}
            stock_numbers = sorted(self._stock)
            added = [self._add_lead(now, now, stock_numbers, rng) for _ in range(add)]
            self._lead_order = None
            return {"changed": sorted(changed), "added": added}

    def put_stock(self, stock_number: str, record: Record) -> None:
        """Store a record verbatim (malformed on purpose, typically) under a StockNumber."""
        with self.lock:
            self._stock[stock_number] = dict(record)
            if match := STOCK_NUMBER.fullmatch(stock_number):
                self._next_stock_number = max(self._next_stock_number, int(match[1]) + 1)
            self._stock_order = None

    def delete_stock(self, stock_number: str) -> bool:
        with self.lock:
            self._stock_order = None
            return self._stock.pop(stock_number, None) is not None

    def put_lead(self, lead_id: int, record: Record) -> None:
        with self.lock:
            self._leads[lead_id] = dict(record)
            self._next_lead_id = max(self._next_lead_id, lead_id + 1)
            self._lead_order = None

    def delete_lead(self, lead_id: int) -> bool:
        with self.lock:
            self._lead_order = None
            return self._leads.pop(lead_id, None) is not None


# -- the dealer API ----------------------------------------------------------------------


def dealer_data(request: Request) -> DealerData:
    """FastAPI dependency: the dealer of the simulator serving this request."""
    return request.app.state.simulator.dealer


Dealer = Annotated[DealerData, Depends(dealer_data)]
Faults = Annotated[FaultInjector, Depends(fault_injector)]


def require_api_key(dealer: Dealer, x_api_key: Annotated[str | None, Header()] = None) -> None:
    if x_api_key != dealer.api_key:
        raise HTTPException(status_code=401, detail="invalid or missing X-Api-Key")


router = APIRouter(prefix="/dealer/api/v1", dependencies=[Depends(require_api_key)])


def _check_paging(page: int, page_size: int) -> None:
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise HTTPException(
            status_code=400,
            detail=f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}",
        )


def _envelope(page: int, page_size: int, total: int, items: list[Record]) -> JSONResponse:
    return JSONResponse(
        {
            "page": page,
            "page_size": page_size,
            "total": total,
            "total_pages": (total + page_size - 1) // page_size,
            "items": items,
        }
    )


@router.get("/stock")
def list_stock(
    dealer: Dealer,
    faults: Faults,
    page: int = 1,
    page_size: int = 500,
    fields: str | None = None,
) -> JSONResponse:
    """Vehicles by StockNumber; `fields=` gives a sparse listing (only those keys)."""
    _check_paging(page, page_size)
    wanted = [name.strip() for name in fields.split(",") if name.strip()] if fields else None
    if fields is not None and not wanted:
        raise HTTPException(status_code=400, detail="fields must name at least one field")
    rows = dealer.ordered_stock()
    if lost := faults.lost_keys():
        rows = [row for row in rows if row[0] not in lost]
    start = (page - 1) * page_size
    on_page = rows[start : start + page_size]
    if wanted is None:
        items = faults.drop_from_page(on_page)
    else:
        items = [{name: record.get(name) for name in wanted} for _, record in on_page]
    return _envelope(page, page_size, len(rows), items)


@router.get("/leads")
def list_leads(
    dealer: Dealer,
    faults: Faults,
    page: int = 1,
    page_size: int = 500,
    updated_since: str | None = None,
) -> JSONResponse:
    """Leads by (UpdatedAt, LeadId), those with UpdatedAt >= updated_since if given.

    A planted lead whose UpdatedAt is not a timestamp is always served, so the platform
    meets it (and quarantines it) whatever its cursor.
    """
    _check_paging(page, page_size)
    since = None
    if updated_since:
        since = parse_time(updated_since)
        if since is None:
            raise HTTPException(status_code=400, detail="updated_since must be ISO 8601")
    rows = dealer.ordered_leads()
    if since is not None:
        rows = [row for row in rows if row[1] is None or row[1] >= since]
    if lost := faults.lost_keys():
        rows = [row for row in rows if row[0] not in lost]
    start = (page - 1) * page_size
    on_page = [(key, lead) for key, _, lead in rows[start : start + page_size]]
    items = faults.drop_from_page(on_page)
    return _envelope(page, page_size, len(rows), items)


# -- the dealer's part of the control API -----------------------------------------------


class StockMutation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    change: int = Field(default=0, ge=0)
    add: int = Field(default=0, ge=0)
    remove: int = Field(default=0, ge=0)


class LeadMutation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    change: int = Field(default=0, ge=0)
    add: int = Field(default=0, ge=0)


control_router = APIRouter(prefix="/_sim/dealer")
AnyRecord = Annotated[Record, Body()]


@control_router.get("/stock")
def dump_stock(dealer: Dealer) -> JSONResponse:
    """Every vehicle as `/stock` serves it, all pages in order, with no fault applied: the
    source's state to compare a warehouse with. Reads the rows the route pages through."""
    return JSONResponse({"items": [vehicle for _, vehicle in dealer.ordered_stock()]})


@control_router.get("/leads")
def dump_leads(dealer: Dealer) -> JSONResponse:
    """Every lead as `/leads` (no `updated_since`) serves it, all pages, no fault applied."""
    return JSONResponse({"items": [lead for _, _, lead in dealer.ordered_leads()]})


@control_router.post("/mutate")
def mutate_stock(mutation: StockMutation, dealer: Dealer) -> dict[str, list[str]]:
    return dealer.mutate_stock(**mutation.model_dump())


@control_router.post("/leads/mutate")
def mutate_leads(mutation: LeadMutation, dealer: Dealer) -> dict[str, list[int]]:
    return dealer.mutate_leads(**mutation.model_dump())


@control_router.put("/stock/{stock_number}")
def put_stock(stock_number: str, record: AnyRecord, dealer: Dealer) -> Record:
    dealer.put_stock(stock_number, record)
    return record


@control_router.delete("/stock/{stock_number}")
def delete_stock(stock_number: str, dealer: Dealer) -> dict[str, str]:
    if not dealer.delete_stock(stock_number):
        raise HTTPException(status_code=404, detail=f"no vehicle {stock_number}")
    return {"deleted": stock_number}


@control_router.put("/leads/{lead_id}")
def put_lead(lead_id: int, record: AnyRecord, dealer: Dealer) -> Record:
    dealer.put_lead(lead_id, record)
    return record


@control_router.delete("/leads/{lead_id}")
def delete_lead(lead_id: int, dealer: Dealer) -> dict[str, int]:
    if not dealer.delete_lead(lead_id):
        raise HTTPException(status_code=404, detail=f"no lead {lead_id}")
    return {"deleted": lead_id}
