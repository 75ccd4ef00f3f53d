"""The dealer API's writes: PUT (create or replace) and PATCH (change the given fields) of a
vehicle or a lead, which the platform's reconciliation uses to push the warehouse's version
back ("keep local").

Authenticated and answered like the listings (`{"error": ...}`, faults included). Every
accepted write is stamped with the simulated clock (`LastUpdated` / `UpdatedAt`, one minute
newer than anything served before), so an incremental read meets it, and is kept in a write
log (`GET /_sim/dealer/writes`) so a test can assert exactly what the platform pushed.

Optimistic concurrency is `If-Unmodified-Since` (RFC 9110 §13.1.4) against the record's
timestamp: a client that sends the `LastUpdated` it last read gets 412 if the dealer has
changed the record since. Stricter than the RFC in two ways, both so that a client cannot
believe itself protected when it is not: a value that is not an HTTP-date is a 400 (the RFC
says ignore it), and a record that no longer exists, or has no valid timestamp, fails the
condition (412) instead of having it ignored, so a conditional PUT never recreates a record
the dealer deleted in the meantime.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request
from fastapi.responses import JSONResponse

from sync_platform_simulator.dealer import (
    Dealer,
    DealerData,
    Record,
    iso,
    parse_time,
    require_api_key,
)
from sync_platform_simulator.dealer_fields import (
    LEAD_FIELDS,
    VEHICLE_FIELDS,
    FieldRule,
    clean_record,
    quote,
    record_schema,
)

HTTP_DATE_EXAMPLE = "Thu, 01 Jan 2026 00:00:00 GMT"


@dataclass(frozen=True)
class Writable:
    """One kind of record the API writes: where it lives and what it is keyed and stamped by."""

    path: str  # the listing's path segment, also the write log's `resource`
    noun: str
    key_field: str
    stamp_field: str
    rules: Mapping[str, FieldRule]
    records: Callable[[DealerData], Mapping[Any, Record]]
    put: Callable[[DealerData, Any, Record], None]


VEHICLE = Writable(
    "stock",
    "vehicle",
    "StockNumber",
    "LastUpdated",
    VEHICLE_FIELDS,
    lambda dealer: dealer.stock,
    DealerData.put_stock,
)
LEAD = Writable(
    "leads",
    "lead",
    "LeadId",
    "UpdatedAt",
    LEAD_FIELDS,
    lambda dealer: dealer.leads,
    DealerData.put_lead,
)


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_body(raw: bytes) -> Any:
    """The body as JSON; anything else (NaN and Infinity included) is a 400."""
    if not raw.strip():
        raise HTTPException(status_code=400, detail="invalid request: the body is empty")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        raise HTTPException(
            status_code=400, detail="invalid request: the body is not valid JSON"
        ) from None


def _parse_http_date(value: str) -> datetime:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise HTTPException(
            status_code=400,
            detail=f"If-Unmodified-Since must be an HTTP-date such as '{HTTP_DATE_EXAMPLE}' "
            f"(got {quote(value)})",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # asctime form is GMT


def _check_unmodified(kind: Writable, key: Any, current: Record | None, since: datetime) -> None:
    if current is None:
        raise HTTPException(
            status_code=412,
            detail=f"no {kind.noun} {key} to be unmodified (deleted since?); "
            "send the PUT without If-Unmodified-Since to create it",
        )
    changed = parse_time(current.get(kind.stamp_field))
    if changed is None:
        raise HTTPException(
            status_code=412,
            detail=f"{kind.noun} {key} has no valid {kind.stamp_field}, "
            "so it cannot be shown unmodified",
        )
    if changed > since:
        raise HTTPException(
            status_code=412,
            detail=f"{kind.noun} {key} was modified at {iso(changed)}, "
            f"after If-Unmodified-Since ({http_date(since)})",
            headers={"Last-Modified": http_date(changed)},
        )


def write(
    dealer: DealerData,
    kind: Writable,
    key: Any,
    raw: bytes,
    request: Request,
    *,
    complete: bool,
    if_unmodified_since: str | None,
) -> JSONResponse:
    """Check, apply, stamp and log one write: `complete` replaces the record (PUT), else
    the given fields change (PATCH). Checked in the order a client can fix them: JSON (400),
    the precondition's syntax (400), the fields (422), the key (409), then against the
    record as it stands, under the dealer's lock: missing (404), changed since (412)."""
    body = _parse_body(raw)
    since = None if if_unmodified_since is None else _parse_http_date(if_unmodified_since)
    fields, problems = clean_record(
        kind.rules, body, complete=complete, server_fields=[kind.stamp_field]
    )
    if problems:
        raise HTTPException(status_code=422, detail="; ".join(problems))
    if not fields:
        raise HTTPException(status_code=422, detail="the body names no field to change")
    if kind.key_field in fields and fields[kind.key_field] != key:
        raise HTTPException(
            status_code=409,
            detail=f"{kind.key_field} {quote(fields[kind.key_field])} in the body is not "
            f"the {quote(key)} of the path; a write cannot move a {kind.noun} to another key",
        )
    with dealer.lock:
        current = kind.records(dealer).get(key)
        if current is None and not complete:
            raise HTTPException(status_code=404, detail=f"no {kind.noun} {key}")
        if since is not None:
            _check_unmodified(kind, key, current, since)
        now = dealer.tick()
        record = {name: fields[name] for name in kind.rules} if complete else current | fields
        record |= {kind.key_field: key, kind.stamp_field: iso(now)}
        kind.put(dealer, key, record)
        status = 201 if current is None else 200
        dealer.writes.append(
            {
                "seq": len(dealer.writes) + 1,
                "at": iso(now),
                "method": request.method,
                "path": request.url.path,
                "resource": kind.path,
                "key": key,
                "status": status,
                "if_unmodified_since": None if since is None else http_date(since),
                "body": body,
                "record": dict(record),
            }
        )
    return JSONResponse(record, status_code=status, headers={"Last-Modified": http_date(now)})


# -- routes ------------------------------------------------------------------------------

router = APIRouter(prefix="/dealer/api/v1", dependencies=[Depends(require_api_key)])
IfUnmodifiedSince = Annotated[
    str | None,
    Header(
        description="An HTTP-date (e.g. the record's LastUpdated/UpdatedAt as last read): "
        "412 if the record has changed since, or no longer exists",
    ),
]
ERROR = {"application/json": {"schema": {"type": "object", "properties": {"error": {}}}}}


def _openapi(kind: Writable, *, complete: bool) -> dict[str, Any]:
    """The request body and the answers of one write route, for the OpenAPI schema."""
    stored = record_schema(kind.rules, complete=True, server_fields=[kind.stamp_field])
    record = {"application/json": {"schema": stored}}
    answers: dict[int | str, dict[str, Any]] = {
        200: {"description": f"the {kind.noun} as stored", "content": record},
        400: {"description": "not JSON, or a malformed If-Unmodified-Since", "content": ERROR},
        401: {"description": "invalid or missing X-Api-Key", "content": ERROR},
        409: {"description": f"the body's {kind.key_field} is not the path's", "content": ERROR},
        412: {"description": "changed since If-Unmodified-Since", "content": ERROR},
        422: {"description": "an unknown, missing or invalid field", "content": ERROR},
    }
    if complete:
        answers[201] = {"description": f"a new {kind.noun}, as stored", "content": record}
    else:
        answers[404] = {"description": f"no such {kind.noun}", "content": ERROR}
    body = record_schema(kind.rules, complete=complete)
    return {
        "responses": answers,
        "openapi_extra": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}}
        },
    }


@router.put(
    "/stock/{StockNumber}",
    summary="Create or replace a vehicle",
    **_openapi(VEHICLE, complete=True),
)
async def put_vehicle(
    stock_number: Annotated[str, Path(alias="StockNumber")],
    request: Request,
    dealer: Dealer,
    if_unmodified_since: IfUnmodifiedSince = None,
) -> JSONResponse:
    """Every field but LastUpdated, which the server sets; 201 if the vehicle is new."""
    raw = await request.body()
    return write(
        dealer,
        VEHICLE,
        stock_number,
        raw,
        request,
        complete=True,
        if_unmodified_since=if_unmodified_since,
    )


@router.patch(
    "/stock/{StockNumber}",
    summary="Change some fields of a vehicle",
    **_openapi(VEHICLE, complete=False),
)
async def patch_vehicle(
    stock_number: Annotated[str, Path(alias="StockNumber")],
    request: Request,
    dealer: Dealer,
    if_unmodified_since: IfUnmodifiedSince = None,
) -> JSONResponse:
    """Only the fields given change (at least one); the others, and planted ones, stay."""
    raw = await request.body()
    return write(
        dealer,
        VEHICLE,
        stock_number,
        raw,
        request,
        complete=False,
        if_unmodified_since=if_unmodified_since,
    )


@router.put("/leads/{LeadId}", summary="Create or replace a lead", **_openapi(LEAD, complete=True))
async def put_lead(
    lead_id: Annotated[int, Path(alias="LeadId")],
    request: Request,
    dealer: Dealer,
    if_unmodified_since: IfUnmodifiedSince = None,
) -> JSONResponse:
    """Every field but UpdatedAt, which the server sets; 201 if the lead is new."""
    raw = await request.body()
    return write(
        dealer, LEAD, lead_id, raw, request, complete=True, if_unmodified_since=if_unmodified_since
    )


@router.patch(
    "/leads/{LeadId}", summary="Change some fields of a lead", **_openapi(LEAD, complete=False)
)
async def patch_lead(
    lead_id: Annotated[int, Path(alias="LeadId")],
    request: Request,
    dealer: Dealer,
    if_unmodified_since: IfUnmodifiedSince = None,
) -> JSONResponse:
    """Only the fields given change (at least one); the others stay."""
    raw = await request.body()
    return write(
        dealer, LEAD, lead_id, raw, request, complete=False, if_unmodified_since=if_unmodified_since
    )


# -- the write log, in the dealer's part of the control API --------------------------------

control_router = APIRouter(prefix="/_sim/dealer")


@control_router.get("/writes", summary="Every write the dealer API accepted")
def list_writes(dealer: Dealer) -> JSONResponse:
    """Oldest first, since the last reset; refused writes are not in it."""
    with dealer.lock:
        return JSONResponse({"items": list(dealer.writes)})
