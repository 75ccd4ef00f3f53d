"""A 4D-backed legacy ERP behind a simple REST API: session login, paged lists of parent
products, their variants and customers, seeded and deterministic.

Like the real system it answers JSON in ISO-8859-1 (declared in Content-Type; characters
outside Latin-1 become `?`), and on request serves the dirt a legacy database holds: `"NaN"`
and `"Infinity"` where numbers belong, zero dates (`0000-00-00`), trailing spaces. Dirt is an
overlay switched on per record and field over the control API, so clearing it restores the
clean values.

Timestamps come from a simulated clock that starts at 2026-01-01 00:00:00 UTC: generated
history lies before it, each mutation moves it one minute forward, and sessions expire by
it, so a test expires a session by advancing the clock rather than by waiting.
Reference: docs/sources/legacy_erp_api.md.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sync_platform_simulator.faults import FaultInjector, fault_injector

DEFAULT_USERNAME = "sim-user"
DEFAULT_PASSWORD = "sim-pass"
CLOCK_START = datetime(2026, 1, 1, tzinfo=UTC)
MAX_PAGE_SIZE = 1000
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
SESSION_EXPIRED = "session expired"

ADJECTIVES = ["Classic", "Alpine", "Coastal", "Heritage", "Urban", "Nordic", "Merino"]
CATEGORY_OF = {
    "Jumper": "Knitwear",
    "Cardigan": "Knitwear",
    "Parka": "Outerwear",
    "Gilet": "Outerwear",
    "Oxford Shirt": "Shirts",
    "Chino": "Trousers",
    "Boot": "Footwear",
    "Scarf": "Accessories",
}
SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
COLOURS = ["Navy", "Écru", "Crème", "Bordeaux", "Olive", "Charcoal", "Rouge Foncé"]
FIRST_NAMES = ["Jürgen", "Zoë", "François", "Inés", "Søren", "Ana", "Chloé", "Björn", "Mia"]
LAST_NAMES = ["Groß", "Müller", "Núñez", "Ångström", "Dubois", "Smith", "Øster", "Peña"]
CITIES = ["Zürich", "Köln", "München", "Genève", "Málaga", "São Paulo", "Aarhus", "Lyon"]

Record = dict[str, Any]


def stamp(moment: datetime) -> str:
    """The ERP's timestamp form: `YYYY-MM-DD HH:MM:SS`, UTC, no offset."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_time(value: Any) -> datetime | None:
    """A timestamp in the ERP's form or any ISO 8601 (naive means UTC); None if not one
    (a zero date, NaN, a planted string)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def natural_key(key: str) -> tuple[int, int, str]:
    """Numeric keys in numeric order, the rest after them in text order."""
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def _ascii(text: str) -> str:
    text = text.lower().translate(str.maketrans({"ß": "ss", "ø": "o", "æ": "ae"}))
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", folded.lower())


# -- entities ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EntitySpec:
    key: str
    pattern: re.Pattern[str]  # how generated keys look, so new keys come after planted ones
    fields: tuple[str, ...]


ENTITIES: dict[str, EntitySpec] = {
    "products": EntitySpec(
        "ProductCode",
        re.compile(r"P(\d+)"),
        ("ProductCode", "Name", "Category", "ListPrice", "Active", "ModifiedDate", "RowVersion"),
    ),
    "variants": EntitySpec(
        "VariantCode",
        re.compile(r"P\d+-(\d+)"),
        (
            "VariantCode",
            "ProductCode",
            "Size",
            "Colour",
            "Price",
            "StockQty",
            "ModifiedDate",
            "RowVersion",
        ),
    ),
    "customers": EntitySpec(
        "CustomerNo",
        re.compile(r"(\d+)"),
        ("CustomerNo", "Name", "Email", "Phone", "City", "ModifiedDate", "RowVersion"),
    ),
}
EntityName = Literal["products", "variants", "customers"]

# What "dirty mode" puts in a field: a value, or a function of the clean value.
DirtyKind = Literal[
    "nan",
    "infinity",
    "negative_infinity",
    "bare_nan",
    "bare_infinity",
    "zero_date",
    "zero_datetime",
    "trailing_spaces",
    "empty_string",
]
DIRT: dict[str, Callable[[Any], Any]] = {
    "nan": lambda _: "NaN",
    "infinity": lambda _: "Infinity",
    "negative_infinity": lambda _: "-Infinity",
    "bare_nan": lambda _: float("nan"),  # written as a bare NaN token (not strict JSON)
    "bare_infinity": lambda _: float("inf"),  # written as a bare Infinity token
    "zero_date": lambda _: "0000-00-00",
    "zero_datetime": lambda _: "0000-00-00 00:00:00",
    "trailing_spaces": lambda value: f"{'' if value is None else value}   ",
    "empty_string": lambda _: "",
}


class ErpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    products: int = Field(default=200, ge=0)
    variants: int = Field(default=500, ge=0, description="spread over the products")
    customers: int = Field(default=300, ge=0)
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    session_ttl_seconds: int = Field(default=3600, ge=0, description="0: sessions die at once")
    charset: Literal["iso-8859-1", "utf-8"] = "iso-8859-1"


class ErpData:
    """The simulated ERP's tables, dirt overlays, sessions and clock. All writes go through
    these methods under one lock, so the sorted views the routes page through are never
    stale."""

    def __init__(self, seed: int, settings: ErpSettings | None = None):
        settings = settings or ErpSettings()
        self.settings = settings.model_copy()
        self.seed = seed
        self.rng = random.Random(f"erp:{seed}")
        self.clock = CLOCK_START
        self.lock = threading.RLock()
        self.session_ttl = timedelta(seconds=settings.session_ttl_seconds)
        self._tables: dict[str, dict[str, Record]] = {name: {} for name in ENTITIES}
        self._dirt: dict[tuple[str, str], dict[str, str]] = {}
        self._sessions: dict[str, datetime] = {}
        self._sessions_issued = 0
        self._next = {"products": 1, "customers": 10001}
        self._next_variant: dict[str, int] = {}
        self._views: dict[tuple[str, bool], list[tuple[str, datetime | None, Record]]] = {}
        self._since: dict[str, tuple[datetime, list]] = {}  # served_since's last answers
        day = 60 * 24
        for _ in range(settings.products):
            self._add_product(CLOCK_START - timedelta(minutes=self.rng.randint(1, 365 * day)))
        products = sorted(self._tables["products"])
        for _ in range(settings.variants if products else 0):
            parent = self.rng.choice(products)
            self._add_variant(
                parent, CLOCK_START - timedelta(minutes=self.rng.randint(1, 90 * day))
            )
        for _ in range(settings.customers):
            self._add_customer(CLOCK_START - timedelta(minutes=self.rng.randint(1, 365 * day)))

    # -- reading -------------------------------------------------------------------------

    def table(self, entity: str) -> dict[str, Record]:
        """A copy of one table as stored (dirt not applied)."""
        with self.lock:
            return {key: dict(record) for key, record in self._tables[entity].items()}

    def served(self, entity: str, by_modified: bool) -> list[tuple[str, datetime | None, Record]]:
        """(key, ModifiedDate parsed or None, record as served with its dirt), ordered by key
        or by (ModifiedDate, key); a snapshot, safe to page through unlocked.

        Both orders hold the same rows, built once; a record without dirt is served as stored
        (records are replaced, never changed in place, so a snapshot never sees a change).
        The order by (ModifiedDate, key) is the order by key sorted again by ModifiedDate
        (a stable sort keeps the key order among equal dates)."""
        with self.lock:
            view = self._views.get((entity, by_modified))
            if view is None and by_modified:
                view = sorted(
                    self.served(entity, by_modified=False),
                    key=lambda row: str(row[2].get("ModifiedDate")),
                )
                self._views[(entity, by_modified)] = view
            elif view is None:
                view = []
                parsed: dict[str, datetime | None] = {}  # many records share a minute
                for key, record in self._tables[entity].items():
                    if dirt := self._dirt.get((entity, key)):
                        record = record | {
                            name: DIRT[kind](record.get(name)) for name, kind in dirt.items()
                        }
                    modified = record.get("ModifiedDate")
                    if not isinstance(modified, str):
                        moment = parse_time(modified)
                    elif (moment := parsed.get(modified, ...)) is ...:
                        moment = parsed[modified] = parse_time(modified)
                    view.append((key, moment, record))
                view.sort(key=lambda row: natural_key(row[0]))
                self._views[(entity, by_modified)] = view
            return view

    def served_since(
        self, entity: str, since: datetime
    ) -> list[tuple[str, datetime | None, Record]]:
        """The rows by (ModifiedDate, key) modified at or after `since`, and those whose
        ModifiedDate is not a timestamp; the last answer per entity is kept, so paging through
        a delta does not filter the whole table again for every page."""
        with self.lock:
            kept = self._since.get(entity)
            if kept is None or kept[0] != since:
                view = self.served(entity, by_modified=True)
                rows = [row for row in view if row[1] is None or row[1] >= since]
                kept = self._since[entity] = (since, rows)
            return kept[1]

    # -- generating ----------------------------------------------------------------------

    def _price(self, low: float = 9.0, high: float = 450.0) -> float:
        return round(self.rng.uniform(low, high), 2)

    def _add_product(self, modified: datetime, code: str | None = None) -> str:
        if code is None:
            code = f"P{self._next['products']:06d}"
        self._note_key("products", code)
        noun = self.rng.choice(list(CATEGORY_OF))
        self._tables["products"][code] = {
            "ProductCode": code,
            "Name": f"{self.rng.choice(ADJECTIVES)} {noun}",
            "Category": CATEGORY_OF[noun],
            "ListPrice": self._price(),
            "Active": self.rng.random() < 0.9,
            "ModifiedDate": stamp(modified),
            "RowVersion": self.rng.randint(1, 12),
        }
        return code

    def _add_variant(self, parent: str, modified: datetime) -> str:
        number = self._next_variant.get(parent, 1)
        code = f"{parent}-{number:02d}"
        self._note_key("variants", code)
        base = self._tables["products"].get(parent, {}).get("ListPrice")
        price = base if isinstance(base, float) else self._price()
        self._tables["variants"][code] = {
            "VariantCode": code,
            "ProductCode": parent,
            "Size": self.rng.choice(SIZES),
            "Colour": self.rng.choice(COLOURS),
            "Price": round(price * self.rng.choice([1.0, 1.0, 1.1, 0.9]), 2),
            "StockQty": self.rng.randint(0, 400),
            "ModifiedDate": stamp(modified),
            "RowVersion": self.rng.randint(1, 12),
        }
        return code

    def _add_customer(self, modified: datetime) -> str:
        number = self._next["customers"]
        key = str(number)
        self._note_key("customers", key)
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        self._tables["customers"][key] = {
            "CustomerNo": number,
            "Name": f"{first} {last}",
            "Email": f"{_ascii(first)}.{_ascii(last)}{number}@example.com",
            "Phone": f"+41 {self.rng.randint(20, 79)} {self.rng.randint(100, 999)} "
            f"{self.rng.randint(10, 99)} {self.rng.randint(10, 99)}",
            "City": self.rng.choice(CITIES),
            "ModifiedDate": stamp(modified),
            "RowVersion": self.rng.randint(1, 12),
        }
        return key

    def _note_key(self, entity: str, key: str) -> None:
        """Keep generated keys after every key ever used, planted ones included."""
        match = ENTITIES[entity].pattern.fullmatch(key)
        if match is None:
            return
        if entity == "variants":
            parent = key.rsplit("-", 1)[0]
            self._next_variant[parent] = max(self._next_variant.get(parent, 1), int(match[1]) + 1)
        else:
            self._next[entity] = max(self._next[entity], int(match[1]) + 1)

    # -- changing ------------------------------------------------------------------------

    def _changed(self) -> None:
        self._views.clear()
        self._since.clear()

    def _tick(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def _touch(self, entity: str, key: str, now: datetime, **values: Any) -> None:
        record = self._tables[entity][key]
        version = record.get("RowVersion")
        self._tables[entity][key] = (
            record
            | values
            | {
                "ModifiedDate": stamp(now),
                "RowVersion": version + 1 if isinstance(version, int) else 1,
            }
        )

    def _new_values(self, entity: str, record: Record) -> Record:
        if entity == "products":
            return {"ListPrice": self._price(), "Active": self.rng.random() < 0.9}
        if entity == "variants":
            return {"StockQty": self.rng.randint(0, 400), "Price": self._price()}
        city = self.rng.choice([c for c in CITIES if c != record.get("City")])
        return {
            "City": city,
            "Phone": f"+41 {self.rng.randint(20, 79)} 555 01 {self.rng.randint(10, 99)}",
        }

    def mutate(self, entity: str, change: int = 0, add: int = 0, remove: int = 0) -> dict[str, Any]:
        """Change `change` records (newer ModifiedDate, RowVersion + 1), add `add` new ones,
        remove `remove` others (never one changed in the same call), all stamped with one new
        clock minute. Removing a product removes its variants too."""
        with self.lock:
            now = self._tick()
            table = self._tables[entity]
            keys = sorted(table, key=natural_key)
            changed = self.rng.sample(keys, min(change, len(keys)))
            for key in changed:
                self._touch(entity, key, now, **self._new_values(entity, table[key]))
            if entity == "products":
                added = [self._add_product(now) for _ in range(add)]
            elif entity == "variants":
                parents = sorted(self._tables["products"])
                added = [
                    self._add_variant(self.rng.choice(parents), now)
                    for _ in range(add if parents else 0)
                ]
            else:
                added = [self._add_customer(now) for _ in range(add)]
            # (sorting a million keys for nothing is seconds; sample(…, 0) draws nothing)
            untouched = sorted(set(keys) - set(changed), key=natural_key) if remove else []
            removed = sorted(
                self.rng.sample(untouched, min(remove, len(untouched))), key=natural_key
            )
            cascaded = []
            for key in removed:
                del table[key]
                self._dirt.pop((entity, key), None)
                if entity == "products":
                    orphans = [
                        v
                        for v, r in self._tables["variants"].items()
                        if r.get("ProductCode") == key
                    ]
                    for variant in orphans:
                        del self._tables["variants"][variant]
                        self._dirt.pop(("variants", variant), None)
                    cascaded.extend(orphans)
            self._changed()
            outcome: dict[str, Any] = {
                "changed": sorted(changed, key=natural_key),
                "added": added,
                "removed": removed,
            }
            if entity == "products":
                outcome["removed_variants"] = sorted(cascaded)
            return outcome

    def add_orphan_variant(self, parent: str | None = None) -> Record:
        """A variant whose parent product does not exist (yet): by default the code the next
        added product will get, so `mutate products add 1` creates the parent afterwards."""
        with self.lock:
            parent = parent or f"P{self._next['products']:06d}"
            code = self._add_variant(parent, self._tick())
            self._changed()
            return dict(self._tables["variants"][code])

    def put(self, entity: str, key: str, record: Record) -> None:
        """Store a record verbatim (malformed on purpose, typically) under a key."""
        with self.lock:
            self._tables[entity][key] = dict(record)
            self._dirt.pop((entity, key), None)
            self._note_key(entity, key)
            self._changed()

    def delete(self, entity: str, key: str) -> bool:
        with self.lock:
            self._dirt.pop((entity, key), None)
            self._changed()
            return self._tables[entity].pop(key, None) is not None

    def make_dirty(
        self, entity: str, field: str, kind: str, keys: list[str], count: int, touch: bool
    ) -> list[str]:
        """Serve `field` of these records (plus `count` others drawn from the seeded RNG)
        dirty; `touch` stamps them changed so an incremental read meets them."""
        with self.lock:
            table = self._tables[entity]
            missing = [key for key in keys if key not in table]
            if missing:
                raise KeyError(", ".join(missing))
            others = sorted(set(table) - set(keys), key=natural_key)
            chosen = list(dict.fromkeys(keys)) + self.rng.sample(others, min(count, len(others)))
            now = self._tick() if touch else None
            for key in chosen:
                self._dirt.setdefault((entity, key), {})[field] = kind
                if now is not None:
                    self._touch(entity, key, now)
            self._changed()
            return chosen

    def clear_dirt(self, touch: bool) -> int:
        """Serve every record clean again; `touch` stamps them changed."""
        with self.lock:
            cleared = list(self._dirt)
            now = self._tick() if touch and cleared else None
            for entity, key in cleared:
                if now is not None and key in self._tables[entity]:
                    self._touch(entity, key, now)
            self._dirt.clear()
            self._changed()
            return len(cleared)

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            self.clock += timedelta(seconds=seconds)
            return self.clock

    # -- sessions ------------------------------------------------------------------------

    def login(self, username: str, password: str) -> str | None:
        if (username, password) != (self.settings.username, self.settings.password):
            return None
        with self.lock:
            self._sessions_issued += 1
            seed = f"erp-session:{self.seed}:{self._sessions_issued}"
            token = hashlib.sha256(seed.encode()).hexdigest()[:40]
            self._sessions[token] = self.clock + self.session_ttl
            return token

    def session_valid(self, token: str) -> bool:
        with self.lock:
            expires = self._sessions.get(token)
            return expires is not None and self.clock < expires

    def expire_sessions(self) -> int:
        with self.lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count


# -- the ERP API -------------------------------------------------------------------------


def erp_data(request: Request) -> ErpData:
    """FastAPI dependency: the ERP of the simulator serving this request."""
    return request.app.state.simulator.erp


Erp = Annotated[ErpData, Depends(erp_data)]
Faults = Annotated[FaultInjector, Depends(fault_injector)]


def legacy_json(erp: ErpData, content: Any) -> Response:
    """JSON as the legacy server writes it: in its charset (Latin-1 unless set otherwise),
    characters it cannot encode as `?`, NaN/Infinity floats as bare tokens."""
    text = json.dumps(content, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
    charset = erp.settings.charset
    return Response(
        text.encode(charset, errors="replace"), media_type=f"application/json; charset={charset}"
    )


def require_session(erp: Erp, x_session_token: Annotated[str | None, Header()] = None) -> None:
    if not x_session_token or not erp.session_valid(x_session_token):
        raise HTTPException(status_code=401, detail=SESSION_EXPIRED)


router = APIRouter(prefix="/erp/api/v1")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str
    password: str


@router.post("/login")
def login(body: Login, erp: Erp) -> Response:
    token = erp.login(body.username, body.password)
    if token is None:
        raise HTTPException(status_code=401, detail="invalid credentials")
    return legacy_json(
        erp, {"session_token": token, "expires_in": int(erp.session_ttl.total_seconds())}
    )


def _entity(name: str) -> EntitySpec:
    spec = ENTITIES.get(name)
    if spec is None:
        raise HTTPException(status_code=404, detail=f"unknown entity {name!r}")
    return spec


@router.get("/{entity}", dependencies=[Depends(require_session)])
def list_entity(
    entity: str,
    erp: Erp,
    faults: Faults,
    page: int = 1,
    page_size: int = 100,
    modified_since: str | None = None,
    fields: str | None = None,
) -> Response:
    """One page of an entity: by key, or by (ModifiedDate, key) with `modified_since`.

    A record whose ModifiedDate is not a timestamp (a zero date, a planted string) is always
    served under `modified_since`, so an incremental sync meets it (and quarantines it).
    """
    _entity(entity)
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise HTTPException(
            status_code=400,
            detail=f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}",
        )
    wanted = [name.strip() for name in fields.split(",") if name.strip()] if fields else None
    if fields is not None and not wanted:
        raise HTTPException(status_code=400, detail="fields must name at least one field")
    since = None
    if modified_since:
        since = parse_time(modified_since)
        if since is None:
            raise HTTPException(status_code=400, detail="modified_since must be ISO 8601")
    rows = (
        erp.served(entity, by_modified=False) if since is None else erp.served_since(entity, since)
    )
    if lost := faults.lost_keys():
        rows = [row for row in rows if row[0] not in lost]
    start = (page - 1) * page_size
    on_page = [(key, record) for key, _, record in rows[start : start + page_size]]
    if wanted is None:
        data = faults.drop_from_page(on_page)
    else:
        data = [{name: record.get(name) for name in wanted} for _, record in on_page]
    return legacy_json(
        erp,
        {
            "data": data,
            "page": page,
            "page_size": page_size,
            "total_records": len(rows),
            "total_pages": (len(rows) + page_size - 1) // page_size,
        },
    )


# -- the ERP's part of the control API ---------------------------------------------------


class ErpMutation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: EntityName
    change: int = Field(default=0, ge=0)
    add: int = Field(default=0, ge=0)
    remove: int = Field(default=0, ge=0)


class Dirt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: EntityName
    field: str
    kind: DirtyKind
    keys: list[str] = Field(default_factory=list)
    count: int = Field(default=0, ge=0, description="this many more, drawn from the seeded RNG")
    touch: bool = True


class Orphan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_code: str | None = None


class SessionTtl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: int = Field(ge=0, description="0: every session is expired as soon as opened")


class ClockAdvance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advance_seconds: float = Field(ge=0)


control_router = APIRouter(prefix="/_sim/erp")
AnyRecord = Annotated[Record, Body()]


def _counts(erp: ErpData) -> dict[str, int]:
    return {name: len(erp.table(name)) for name in ENTITIES}


@control_router.post("/reset")
def reset_erp(
    request: Request, settings: Annotated[ErpSettings | None, Body()] = None
) -> dict[str, int]:
    """Regenerate the ERP alone (sizes, credentials, TTL, charset) from the simulator seed;
    sessions, dirt and the clock start afresh. Faults and other sources are untouched."""
    state = request.app.state.simulator
    settings = settings or ErpSettings()
    state.erp = ErpData(state.seed, settings)
    state.settings.erp = settings.model_copy()
    return _counts(state.erp)


@control_router.get("/counts")
def counts(erp: Erp) -> dict[str, int]:
    return _counts(erp)


@control_router.get("/records/{entity}")
def dump_records(entity: str, erp: Erp) -> Response:
    """Every record of an entity as the listing (no `modified_since`) serves it, dirt, charset
    and all pages included, with no fault applied and no session: the source's state to
    compare a warehouse with. Built from the same rows and serializer as the listing."""
    if entity not in ENTITIES:
        known = ", ".join(ENTITIES)
        raise HTTPException(status_code=404, detail=f"unknown entity {entity!r}; known: {known}")
    rows = erp.served(entity, by_modified=False)
    return legacy_json(erp, {"items": [record for _, _, record in rows]})


@control_router.post("/mutate")
def mutate(mutation: ErpMutation, erp: Erp) -> dict[str, Any]:
    return erp.mutate(**mutation.model_dump())


@control_router.post("/variants/orphan")
def orphan_variant(erp: Erp, body: Annotated[Orphan | None, Body()] = None) -> Record:
    return erp.add_orphan_variant((body or Orphan()).product_code)


@control_router.post("/dirty")
def make_dirty(dirt: Dirt, erp: Erp) -> dict[str, Any]:
    try:
        keys = erp.make_dirty(dirt.entity, dirt.field, dirt.kind, dirt.keys, dirt.count, dirt.touch)
    except KeyError as exc:
        raise HTTPException(status_code=404, detail=f"no {dirt.entity} {exc.args[0]}") from None
    return {"entity": dirt.entity, "field": dirt.field, "kind": dirt.kind, "keys": keys}


@control_router.delete("/dirty")
def clear_dirt(erp: Erp, touch: bool = True) -> dict[str, int]:
    return {"cleared": erp.clear_dirt(touch)}


@control_router.put("/session_ttl")
def set_session_ttl(ttl: SessionTtl, erp: Erp) -> dict[str, int]:
    """Applies to sessions opened from now on."""
    erp.session_ttl = timedelta(seconds=ttl.seconds)
    return {"seconds": ttl.seconds}


@control_router.post("/sessions/expire")
def expire_sessions(erp: Erp) -> dict[str, int]:
    return {"expired": erp.expire_sessions()}


@control_router.get("/clock")
def get_clock(erp: Erp) -> dict[str, str]:
    return {"now": stamp(erp.clock)}


@control_router.post("/clock")
def advance_clock(advance: ClockAdvance, erp: Erp) -> dict[str, str]:
    return {"now": stamp(erp.advance(advance.advance_seconds))}


@control_router.put("/{entity}/{key}")
def put_record(entity: EntityName, key: str, record: AnyRecord, erp: Erp) -> Record:
    erp.put(entity, key, record)
    return record


@control_router.delete("/{entity}/{key}")
def delete_record(entity: EntityName, key: str, erp: Erp) -> dict[str, str]:
    if not erp.delete(entity, key):
        raise HTTPException(status_code=404, detail=f"no {entity} {key}")
    return {"deleted": key}
