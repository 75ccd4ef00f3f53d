"""The legacy ERP client against the simulated 4D REST API, over real loopback HTTP."""

from __future__ import annotations

import json
import math
from datetime import datetime

import httpx
import pytest

from sync_platform.config.models import EntityConfig
from sync_platform.defs.legacy_erp.resources import erp_entity_source
from sync_platform.errors import ConfigurationError
from sync_platform.sources.http_session import RetrySettings
from sync_platform.sources.legacy_erp import LegacyErpClient

QUICK = RetrySettings(attempts=4, wait_initial=0.01, wait_jitter=0.0, wait_max=0.05)
PRODUCTS, VARIANTS, CUSTOMERS = 30, 60, 45
PRODUCTS_PATH = "/erp/api/v1/products"
CLOCK_START = datetime.fromisoformat("2026-01-01T00:00:00+00:00")


@pytest.fixture
def erp(simulator):
    """The session simulator with a small ERP (30 products, 60 variants, 45 customers)."""
    simulator.erp(
        "POST", "/reset", {"products": PRODUCTS, "variants": VARIANTS, "customers": CUSTOMERS}
    )
    return simulator


def client(sim, username="sim-user", password="sim-pass", **kwargs) -> LegacyErpClient:
    kwargs = {"page_size": 10, "retry": QUICK} | kwargs
    return LegacyErpClient(f"{sim.url}/erp", username, password, **kwargs)


def records(pages) -> list[dict]:
    return [record for page in pages for record in page]


def keys(rows, field="ProductCode") -> list:
    return [row[field] for row in rows]


def raw_page(sim, entity: str, **params) -> httpx.Response:
    """One page as the ERP sends it, bytes and headers, with a session of its own."""
    token = httpx.post(
        f"{sim.url}/erp/api/v1/login", json={"username": "sim-user", "password": "sim-pass"}
    ).json()["session_token"]
    return httpx.get(
        f"{sim.url}/erp/api/v1/{entity}",
        params={"page_size": 1000, **params},
        headers={"X-Session-Token": token},
    )


# -- session --------------------------------------------------------------------------------


def test_one_login_serves_a_walk_over_every_announced_page(erp):
    with client(erp, page_size=7) as erp_client:
        pages = list(erp_client.pages("/api/v1/products"))
        assert erp_client.logins == 1
    rows = records(pages)
    assert [len(page) for page in pages] == [7, 7, 7, 7, 2]
    assert keys(rows) == [f"P{n:06d}" for n in range(1, PRODUCTS + 1)]
    assert set(rows[0]) == {
        "ProductCode", "Name", "Category", "ListPrice", "Active", "ModifiedDate", "RowVersion",
    }  # fmt: skip
    assert erp.served("/erp") == {
        ("/erp/api/v1/login", 200): 1,
        (PRODUCTS_PATH, 200): 5,
    }


def test_an_expired_session_is_renewed_once_and_the_request_repeated(erp):
    erp.erp("PUT", "/session_ttl", {"seconds": 120})
    with client(erp) as erp_client:
        pages = erp_client.pages("/api/v1/products")
        first = next(pages)
        erp.erp("POST", "/clock", {"advance_seconds": 121})  # the session dies mid-walk
        rest = records(pages)
        assert erp_client.logins == 2
    assert keys(first + rest) == [f"P{n:06d}" for n in range(1, PRODUCTS + 1)]
    served = erp.served("/erp")
    assert served[(PRODUCTS_PATH, 401)] == 1
    assert served[("/erp/api/v1/login", 200)] == 2
    assert served[(PRODUCTS_PATH, 200)] == 3


def test_sessions_expired_by_the_server_are_renewed_too(erp):
    with client(erp) as erp_client:
        list(erp_client.pages("/api/v1/customers"))
        assert erp.erp("POST", "/sessions/expire") == {"expired": 1}
        assert len(records(erp_client.pages("/api/v1/customers"))) == CUSTOMERS
        assert erp_client.logins == 2


def test_a_session_refused_right_after_login_is_a_configuration_error_not_a_loop(erp):
    erp.erp("PUT", "/session_ttl", {"seconds": 0})  # every session is dead on arrival
    with client(erp) as erp_client, pytest.raises(ConfigurationError) as caught:
        list(erp_client.pages("/api/v1/products"))
    assert "refused a session opened a moment before" in str(caught.value)
    assert "LEGACY_ERP_USERNAME" in str(caught.value)
    assert erp.served("/erp") == {("/erp/api/v1/login", 200): 2, (PRODUCTS_PATH, 401): 2}


def test_wrong_credentials_name_the_settings_never_their_values(erp):
    with (
        client(erp, username="ops-reader", password="hunter2-secret") as erp_client,
        pytest.raises(ConfigurationError) as caught,
    ):
        list(erp_client.pages("/api/v1/products"))
    message = str(caught.value)
    assert "LEGACY_ERP_USERNAME" in message and "LEGACY_ERP_PASSWORD" in message
    assert "hunter2-secret" not in message and "ops-reader" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert erp.served("/erp") == {("/erp/api/v1/login", 401): 1}  # not retried


def test_credentials_are_configurable_in_the_simulator(erp):
    erp.erp("POST", "/reset", {"products": 3, "username": "erp-sync", "password": "s3cret"})
    assert len(records(client(erp, "erp-sync", "s3cret").pages("/api/v1/products"))) == 3
    with pytest.raises(ConfigurationError):
        list(client(erp).pages("/api/v1/products"))


def test_a_failing_login_is_retried_like_any_request(erp):
    erp.faults(fail_next=2)
    assert len(records(client(erp).pages("/api/v1/products"))) == PRODUCTS
    assert erp.served("/erp")[("/erp/api/v1/login", 503)] == 2


def test_an_unknown_entity_endpoint_is_a_configuration_error(erp):
    with pytest.raises(ConfigurationError, match=r"no endpoint /api/v1/orders \(404\)"):
        list(client(erp).pages("/api/v1/orders"))


# -- lists ----------------------------------------------------------------------------------


def test_modified_since_returns_exactly_the_changes_newest_last(erp):
    before = {row["ProductCode"]: row for row in records(client(erp).pages("/api/v1/products"))}
    first = erp.erp("POST", "/mutate", {"entity": "products", "change": 3, "add": 2, "remove": 1})
    second = erp.erp("POST", "/mutate", {"entity": "products", "change": 1})
    # The clock started at 2026-01-01 00:00; each mutation is one minute later.
    since = datetime(2026, 1, 1, 0, 0, 30)  # naive: taken as UTC
    changed = records(client(erp).pages("/api/v1/products", modified_since=since))
    expected = set(first["changed"]) | set(first["added"]) | set(second["changed"])
    assert set(keys(changed)) == expected and len(changed) == len(expected)
    assert keys(changed)[-1] == second["changed"][0]  # by (ModifiedDate, key)
    for row in changed:
        if row["ProductCode"] in first["changed"] and row["ProductCode"] not in second["changed"]:
            assert row["RowVersion"] == before[row["ProductCode"]]["RowVersion"] + 1
            assert row["ModifiedDate"] == "2026-01-01 00:01:00"
    later = records(
        client(erp).pages("/api/v1/products", modified_since=CLOCK_START.replace(minute=2))
    )
    assert keys(later) == second["changed"]
    assert first["removed"][0] not in keys(records(client(erp).pages("/api/v1/products")))


def test_removing_a_product_removes_its_variants(erp):
    outcome = erp.erp("POST", "/mutate", {"entity": "products", "remove": 2})
    variants = records(client(erp).pages("/api/v1/variants"))
    assert not {row["ProductCode"] for row in variants} & set(outcome["removed"])
    assert len(variants) == VARIANTS - len(outcome["removed_variants"])


def test_variants_reference_existing_products_until_an_orphan_is_planted(erp):
    products = set(keys(records(client(erp).pages("/api/v1/products"))))
    variants = records(client(erp).pages("/api/v1/variants"))
    assert len(variants) == VARIANTS and {row["ProductCode"] for row in variants} <= products
    orphan = erp.erp("POST", "/variants/orphan")
    assert orphan["ProductCode"] == f"P{PRODUCTS + 1:06d}" not in products
    fresh = client(erp).pages("/api/v1/variants", modified_since=CLOCK_START)
    assert keys(records(fresh), "VariantCode") == [orphan["VariantCode"]]
    # The parent arrives later: the next product added gets the code the orphan points at.
    added = erp.erp("POST", "/mutate", {"entity": "products", "add": 1})["added"]
    assert added == [orphan["ProductCode"]]


def test_the_key_listing_holds_only_the_key_and_survives_a_dropped_record(erp):
    erp.faults(drop_keys=[{"key": "P000004", "times": 1}])
    listing = records(client(erp).pages("/api/v1/products", fields=["ProductCode"]))
    full = keys(records(client(erp).pages("/api/v1/products")))  # listings leave drops alone
    assert "P000004" not in full and len(full) == PRODUCTS - 1
    assert all(set(row) == {"ProductCode"} for row in listing)
    assert keys(listing) == [f"P{n:06d}" for n in range(1, PRODUCTS + 1)]
    assert "P000004" in keys(records(client(erp).pages("/api/v1/products")))  # drop used up


def test_planted_and_deleted_records(erp):
    erp.erp("PUT", "/customers/99999", {"CustomerNo": "not-a-number", "Name": None})
    erp.erp("DELETE", "/customers/10001")
    rows = records(client(erp).pages("/api/v1/customers"))
    assert rows[-1] == {"CustomerNo": "not-a-number", "Name": None}
    assert 10001 not in keys(rows, "CustomerNo") and len(rows) == CUSTOMERS


# -- legacy encoding and dirt ---------------------------------------------------------------


def test_latin1_bodies_are_decoded_by_their_declared_charset(erp):
    raw = raw_page(erp, "customers")
    assert raw.headers["content-type"] == "application/json; charset=iso-8859-1"
    with pytest.raises(UnicodeDecodeError):
        raw.content.decode("utf-8")  # really Latin-1 bytes, not UTF-8 or \u escapes
    sent = json.loads(raw.content.decode("iso-8859-1"))["data"]
    assert any(not row["Name"].isascii() for row in sent)
    assert records(client(erp).pages("/api/v1/customers")) == sent


def test_characters_latin1_cannot_hold_arrive_as_question_marks(erp):
    erp.erp("PUT", "/customers/10002", {"CustomerNo": 10002, "Name": "Zoë Groß €5 ✓"})
    rows = {row["CustomerNo"]: row for row in records(client(erp).pages("/api/v1/customers"))}
    assert rows[10002]["Name"] == "Zoë Groß ?5 ?"


def test_a_truncated_latin1_page_is_retried(erp):
    erp.faults(truncate_next=1)
    assert len(records(client(erp).pages("/api/v1/customers"))) == CUSTOMERS


def test_dirty_values_arrive_exactly_as_the_erp_sent_them(erp):
    plan = [
        ("products", "ListPrice", "nan", "P000001"),
        ("products", "ListPrice", "infinity", "P000002"),
        ("products", "ListPrice", "negative_infinity", "P000003"),
        ("products", "ModifiedDate", "zero_datetime", "P000005"),
        ("variants", "Price", "bare_nan", None),
        ("variants", "StockQty", "bare_infinity", None),
        ("customers", "Name", "trailing_spaces", "10003"),
        ("customers", "ModifiedDate", "zero_date", "10004"),
    ]
    clean = {
        entity: records(client(erp).pages(f"/api/v1/{entity}"))
        for entity in ("products", "variants", "customers")
    }
    chosen = {}
    for entity, field, kind, key in plan:
        body = {"entity": entity, "field": field, "kind": kind}
        body |= {"keys": [key]} if key else {"count": 1}
        chosen[(entity, field)] = erp.erp("POST", "/dirty", body)["keys"][0]

    def row(entity, field):
        key_field = {"products": "ProductCode", "variants": "VariantCode"}.get(entity, "CustomerNo")
        rows = records(client(erp).pages(f"/api/v1/{entity}"))
        return next(r for r in rows if str(r[key_field]) == chosen[(entity, field)])

    assert row("products", "ListPrice")["ListPrice"] in {"NaN", "Infinity", "-Infinity"}
    prices = {
        r["ProductCode"]: r["ListPrice"] for r in records(client(erp).pages("/api/v1/products"))
    }
    assert [prices["P000001"], prices["P000002"], prices["P000003"]] == [
        "NaN", "Infinity", "-Infinity",
    ]  # fmt: skip
    assert row("products", "ModifiedDate")["ModifiedDate"] == "0000-00-00 00:00:00"
    assert math.isnan(row("variants", "Price")["Price"])  # a bare NaN token
    assert row("variants", "StockQty")["StockQty"] == math.inf
    name = next(r["Name"] for r in clean["customers"] if r["CustomerNo"] == 10003)
    assert row("customers", "Name")["Name"] == name + "   "
    assert row("customers", "ModifiedDate")["ModifiedDate"] == "0000-00-00"

    # A record whose ModifiedDate is not a date is served to every incremental read.
    far_future = datetime(2030, 1, 1)
    late = records(client(erp).pages("/api/v1/products", modified_since=far_future))
    assert keys(late) == ["P000005"]

    erp.http.delete("/_sim/erp/dirty").raise_for_status()
    assert (
        records(client(erp).pages("/api/v1/products"))[0]["ListPrice"]
        == (clean["products"][0]["ListPrice"])
    )


def test_dirt_is_touched_so_an_incremental_read_meets_it(erp):
    erp.erp(
        "POST",
        "/dirty",
        {"entity": "customers", "field": "City", "kind": "trailing_spaces", "count": 3},
    )
    changed = records(client(erp).pages("/api/v1/customers", modified_since=CLOCK_START))
    assert len(changed) == 3 and all(row["City"].endswith("   ") for row in changed)


# -- the engine's view ----------------------------------------------------------------------


def entity(name: str, **spec) -> EntityConfig:
    return EntityConfig.model_validate({"name": name, **spec})


def test_entity_source_reads_snapshots_whole_and_deltas_from_the_cursor(erp):
    products = entity(
        "erp_products",
        table="erp_products",
        endpoint="/api/v1/products",
        key=["product_code"],
        fields={
            "product_code": {"from": "ProductCode", "required": True},
            "name": {"from": "Name"},
        },
    )
    variants = entity(
        "erp_variants",
        table="erp_variants",
        endpoint="/api/v1/variants",
        key=["variant_code"],
        sync_mode="incremental",
        cursor_field="modified",
        fields={
            "variant_code": {"from": "VariantCode", "required": True},
            "modified": {"from": "ModifiedDate", "type": "datetime"},
        },
    )
    changed = erp.erp("POST", "/mutate", {"entity": "variants", "change": 2})["changed"]
    erp_client = client(erp)
    with erp_entity_source(erp_client, products) as source:
        assert len(records(source.pages(CLOCK_START))) == PRODUCTS  # a snapshot ignores since
        assert records(source.key_listing()) == [
            {"ProductCode": f"P{n:06d}"} for n in range(1, PRODUCTS + 1)
        ]
    with pytest.raises(RuntimeError, match="closed"):  # one client per sync: closed after
        list(erp_client.pages("/api/v1/products"))
    with erp_entity_source(client(erp), variants) as source:
        assert keys(records(source.pages(CLOCK_START)), "VariantCode") == changed
        assert len(records(source.pages(None))) == VARIANTS  # no cursor yet: everything
        assert len(records(source.key_listing())) == VARIANTS
