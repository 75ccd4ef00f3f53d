"""Raw dealer records in the source's wire shape, for engine tests that need no HTTP."""

from __future__ import annotations

from typing import Any

from sync_platform.config import cached_source_config
from sync_platform.engine.ports import EntitySource

DEALER = cached_source_config("dealer_feed")
STOCK = DEALER.entities["dealer_stock"]
LEADS = DEALER.entities["dealer_leads"]


def vehicle(i: int, **overrides: Any) -> dict[str, Any]:
    record = {
        "StockNumber": f"STK{i:06d}",
        "VIN": f"1HGCM82633A{i:06d}",
        "Make": "Toyota",
        "Model": "Corolla",
        "Badge": "Ascent" if i % 3 else None,
        "Year": 2010 + i % 15,
        "Odometer": i * 37,
        "Price": round(15000 + i * 12.5, 2),
        "Status": "Available",
        "Colour": "White",
        "BodyType": "Sedan",
        "FuelType": "Petrol",
        "Transmission": "Automatic",
        "Location": "Parramatta",
        "LastUpdated": "2026-11-01T08:00:00Z",
    }
    return record | overrides


def lead(i: int, updated: str = "2026-11-01T09:00:00Z", **overrides: Any) -> dict[str, Any]:
    record = {
        "LeadId": i,
        "StockNumber": f"STK{i:06d}",
        "CustomerName": f"Customer {i}",
        "Email": f"customer{i}@example.com",
        "Phone": "0400 000 000",
        "Source": "website",
        "Status": "new",
        "CreatedAt": "2026-11-01T07:00:00Z",
        "UpdatedAt": updated,
    }
    return record | overrides


def fleet(n: int) -> list[dict[str, Any]]:
    return [vehicle(i) for i in range(n)]


def in_memory_source(
    records: list[dict[str, Any]], *, page_size: int = 100, listed: list[str] | None = None
) -> EntitySource:
    """A source serving `records` in pages; `listed` overrides the key listing."""

    def pages(_since):
        return [records[i : i + page_size] for i in range(0, len(records), page_size)]

    def keys():
        numbers = listed if listed is not None else [r.get("StockNumber") for r in records]
        return [[{"StockNumber": number} for number in numbers]]

    return EntitySource(pages=pages, key_listing=keys)


LEGACY = cached_source_config("legacy_erp")
PRODUCTS = LEGACY.entities["legacy_products"]
VARIANTS = LEGACY.entities["legacy_variants"]
CUSTOMERS = LEGACY.entities["legacy_customers"]


def product(code: str, modified: str = "2026-11-01T08:00:00Z", **overrides: Any) -> dict[str, Any]:
    record = {
        "ProductCode": code,
        "Name": f"Product {code}",
        "Category": "Tyres",
        "ListPrice": "120.00",
        "Active": "true",
        "RowVersion": 1,
        "ModifiedDate": modified,
    }
    return record | overrides


def variant(code: str, parent: str, modified: str = "2026-11-01T08:00:00Z", **overrides: Any):
    record = {
        "VariantCode": code,
        "ProductCode": parent,
        "Size": "M",
        "Colour": "Black",
        "Price": "99.50",
        "StockQty": 4,
        "RowVersion": 1,
        "ModifiedDate": modified,
    }
    return record | overrides


def delta_source(records: list[dict[str, Any]], stamp: str = "ModifiedDate") -> EntitySource:
    """A source honouring `since` like an incremental API (ISO timestamps compare as text)."""

    def pages(since):
        cutoff = since.isoformat().replace("+00:00", "Z") if since else None
        return [[r for r in records if cutoff is None or str(r.get(stamp)) >= cutoff]]

    return EntitySource(pages=pages)
