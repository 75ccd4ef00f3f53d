"""An EasyCars-style dealer API: paged stock and leads, seeded and deterministic.

Data comes from `random.Random(seed)`; timestamps from a simulated clock that starts at
2026-01-01T00:00:00Z and moves forward only when data is mutated, so a change is always
newer than what came before it. Reference: docs/sources/dealer_feed_api.md.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse

CLOCK_START = datetime(2026, 1, 1, tzinfo=UTC)
MAX_PAGE_SIZE = 1000
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
LEAD_SOURCES = ["website", "carsales", "walk-in", "phone"]
LEAD_STATUSES = ["new", "contacted", "qualified", "won", "lost"]
FIRST_NAMES = ["Ava", "Noah", "Mia", "Liam", "Zoe", "Jack", "Ella", "Leo", "Ruby", "Max"]
LAST_NAMES = ["Nguyen", "Smith", "Patel", "Brown", "Chen", "Wilson", "Kelly", "Singh"]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DealerData:
    """The simulated dealer's vehicles and leads, changed only through its methods."""

    def __init__(
        self, seed: int, stock: int = 500, leads: int = 200, api_key: str = "sim-dealer-key"
    ):
        self.api_key = api_key
        self.rng = random.Random(f"dealer:{seed}")
        self.clock = CLOCK_START
        self.lock = threading.Lock()
        self.stock: dict[str, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self._next_stock = 0
        for _ in range(stock):
            self._add_vehicle(self.clock - timedelta(minutes=self.rng.randint(1, 60 * 24 * 90)))
        for lead_id in range(1, leads + 1):
            created = self.clock - timedelta(minutes=self.rng.randint(60, 60 * 24 * 60))
            self.leads[lead_id] = self._lead(
                lead_id, created, created + timedelta(minutes=self.rng.randint(0, 59))
            )

    def _vin(self) -> str:
        return "".join(self.rng.choice(VIN_ALPHABET) for _ in range(17))

    def _add_vehicle(self, updated: datetime) -> str:
        number = f"STK{self._next_stock:06d}"
        self._next_stock += 1
        make = self.rng.choice(list(MODELS))
        self.stock[number] = {
            "StockNumber": number,
            "VIN": self._vin(),
            "Make": make,
            "Model": self.rng.choice(MODELS[make]),
            "Badge": self.rng.choice(BADGES),
            "Year": self.rng.randint(2005, 2026),
            "Odometer": self.rng.randint(0, 250_000),
            "Price": round(self.rng.uniform(5_000, 90_000), 2),
            "Status": self.rng.choices(["Available", "Reserved", "Sold"], [8, 1, 1])[0],
            "Colour": self.rng.choice(COLOURS),
            "BodyType": self.rng.choice(BODIES),
            "FuelType": self.rng.choice(FUELS),
            "Transmission": self.rng.choice(["Automatic", "Manual"]),
            "Location": self.rng.choice(LOCATIONS),
            "LastUpdated": iso(updated),
        }
        return number

    def _lead(self, lead_id: int, created: datetime, updated: datetime) -> dict[str, Any]:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        return {
            "LeadId": lead_id,
            "StockNumber": self.rng.choice(sorted(self.stock)) if self.stock else None,
            "CustomerName": f"{first} {last}",
            "Email": f"{first}.{last}{lead_id}@example.com".lower(),
            "Phone": f"04{self.rng.randint(0, 99_999_999):08d}",
            "Source": self.rng.choice(LEAD_SOURCES),
            "Status": self.rng.choice(LEAD_STATUSES[:3]),
            "CreatedAt": iso(created),
            "UpdatedAt": iso(updated),
        }

    def _tick(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def mutate_stock(self, change: int = 0, add: int = 0, remove: int = 0) -> dict[str, list[str]]:
        with self.lock:
            now = self._tick()
            keys = sorted(self.stock)
            changed = self.rng.sample(keys, min(change, len(keys)))
            for key in changed:
                self.stock[key] = self.stock[key] | {
                    "Price": round(self.rng.uniform(5_000, 90_000), 2),
                    "LastUpdated": iso(now),
                }
            added = [self._add_vehicle(now) for _ in range(add)]
            removed = self.rng.sample(sorted(set(keys) - set(changed)), min(remove, len(keys)))
            for key in removed:
                del self.stock[key]
            return {"changed": sorted(changed), "added": added, "removed": sorted(removed)}

    def mutate_leads(self, change: int = 0, add: int = 0) -> dict[str, list[int]]:
        with self.lock:
            now = self._tick()
            ids = sorted(self.leads)
            changed = self.rng.sample(ids, min(change, len(ids)))
            for lead_id in changed:
                current = self.leads[lead_id]["Status"]
                options = [s for s in LEAD_STATUSES if s != current]
                self.leads[lead_id] |= {"Status": self.rng.choice(options), "UpdatedAt": iso(now)}
            first_new = max(ids, default=0) + 1
            added = list(range(first_new, first_new + add))
            for lead_id in added:
                self.leads[lead_id] = self._lead(lead_id, now, now)
            return {"changed": sorted(changed), "added": added}


def _page(items: list[dict], page: int, page_size: int) -> dict[str, Any]:
    total = len(items)
    start = (page - 1) * page_size
    return {
        "page": page,
        "page_size": page_size,
        "total": total,
        "total_pages": (total + page_size - 1) // page_size,
        "items": items[start : start + page_size],
    }


def _authorize(data: DealerData, api_key: str | None) -> None:
    if api_key != data.api_key:
        raise HTTPException(status_code=401, detail="invalid or missing X-Api-Key")


def _paging(page: int, page_size: int) -> None:
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise HTTPException(
            status_code=400, detail=f"page must be ≥ 1 and page_size between 1 and {MAX_PAGE_SIZE}"
        )


router = APIRouter(prefix="/dealer/api/v1")


@router.get("/stock")
def list_stock(
    request: Request,
    page: int = 1,
    page_size: int = 500,
    fields: str | None = None,
    x_api_key: str | None = Header(default=None),
) -> JSONResponse:
    state = request.app.state.simulator
    data: DealerData = state.dealer
    _authorize(data, x_api_key)
    _paging(page, page_size)
    listing = fields is not None
    with data.lock:
        items = [
            record
            for key, record in sorted(data.stock.items())
            if not state.faults.drops(key, listing=listing)
        ]
    if listing:
        wanted = [name.strip() for name in fields.split(",")]
        items = [{name: item.get(name) for name in wanted} for item in items]
    return JSONResponse(_page(items, page, page_size))


@router.get("/leads")
def list_leads(
    request: Request,
    page: int = 1,
    page_size: int = 500,
    updated_since: str | None = Query(default=None),
    x_api_key: str | None = Header(default=None),
) -> JSONResponse:
    state = request.app.state.simulator
    data: DealerData = state.dealer
    _authorize(data, x_api_key)
    _paging(page, page_size)
    since = None
    if updated_since:
        try:
            since = datetime.fromisoformat(updated_since.replace("Z", "+00:00"))
        except ValueError:
            raise HTTPException(status_code=400, detail="updated_since must be ISO 8601") from None
    with data.lock:
        leads = sorted(
            data.leads.values(),
            key=lambda lead: (str(lead.get("UpdatedAt")), str(lead.get("LeadId"))),
        )
        items = [
            lead
            for lead in leads
            if (since is None or _after(lead.get("UpdatedAt"), since))
            and not state.faults.drops(str(lead.get("LeadId")), listing=False)
        ]
    return JSONResponse(_page(items, page, page_size))


def _after(value: Any, since: datetime) -> bool:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) >= since
    except ValueError:
        return True  # a planted malformed timestamp is always served, so it gets quarantined
