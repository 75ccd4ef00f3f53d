"""What the soak does to the sources: the fault mix on every source request, the faults
planted on purpose that the platform cannot heal (each must end in exactly one alert), and
the rounds of ordinary change a business makes while the platform runs."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import httpx

# ~30% of source requests faulted, one seeded draw per request (the simulator's rated faults).
FAULT_MIX = {
    "error_rate": 0.08,  # 5xx
    "rate_limit_rate": 0.08,  # 429 with Retry-After
    "retry_after": 1,
    "truncate_rate": 0.05,  # a body cut short
    "slow_rate": 0.07,  # a slow answer
    "slow_ms": 1500,
    "hang_rate": 0.02,  # no answer within the clients' timeout
    "hang_seconds": 31,
}
STOCK = 200
LEADS = 100
SELLERS = 80
WORKFLOWS = ("new_lead", "form_submission", "order_update")
WEBHOOKS_PER_ROUND = 6
WEBHOOK_DROP_RATE = 0.05
WEBHOOK_DUPLICATE_RATE = 0.10
# ERP deletions reach the warehouse through the weekly full sync, which refuses to delete more
# than mass_delete_max_share (20%) at once: a deletion every third round stays well under it.
ERP_DELETE_EVERY = 3
INVALID_VEHICLE = "STK900001"
LOST_WORKFLOW = "order_update"
RENAMED_SEND_NODE = "HTTP Request"  # n8n renamed the send node: the payload cannot be found
# The alerts the planted faults explain, and nothing else may be raised.
EXPLAINED_ALERTS = {
    # the invalid vehicle: quarantined (1 of 200 is under the quarantine_rate check's 5%)
    "data_integrity:dealer_feed:dealer_stock",
    # the vehicle the feed never serves: an unrecoverable gap, and the verification says so
    "unrecovered_gap:dealer_feed:dealer_stock",
    "check_failed:dealer_stock:in_step_with_source",
    # the n8n delivery whose payload cannot be found
    f"webhook_delivery_lost:{LOST_WORKFLOW}",
    "check_failed:n8n_delivery_gaps:no_lost_deliveries",
}


@dataclass
class Planted:
    """The unrecoverable faults, by key, for the verdict."""

    invalid_vehicle: str = INVALID_VEHICLE
    lost_vehicle: str = ""
    lost_execution: str = ""


@dataclass
class Ledger:
    """What the rounds did, for the report and the verdict."""

    rounds: int = 0
    changes: Counter = field(default_factory=Counter)
    executions: dict[str, list[str]] = field(default_factory=dict)  # workflow → ids sent
    dropped: int = 0
    duplicated: int = 0
    healed_drops: list[str] = field(default_factory=list)  # record keys dropped once


def reset_sources(control: httpx.Client, seed: int) -> None:
    control.post(
        "/_sim/reset",
        json={
            "seed": seed,
            "dealer": {"stock": STOCK, "leads": LEADS},
            "sheets": {"sellers": SELLERS},
        },
    ).raise_for_status()


def plant(control: httpx.Client) -> Planted:
    """An invalid vehicle (quarantined for good) and a vehicle the feed lists but never serves
    (an unrecoverable gap); the fault mix on from here."""
    planted = Planted()
    stock = control.get("/_sim/dealer/stock").json()["items"]
    template = dict(stock[0])
    template.update({"StockNumber": INVALID_VEHICLE, "VIN": "NOT-A-VIN"})
    control.put(f"/_sim/dealer/stock/{INVALID_VEHICLE}", json=template).raise_for_status()
    planted.lost_vehicle = stock[3]["StockNumber"]
    set_faults(control, [{"key": planted.lost_vehicle, "times": 1_000_000}])
    return planted


def set_faults(control: httpx.Client, drop_keys: list[dict]) -> None:
    control.post("/_sim/faults", json={**FAULT_MIX, "drop_keys": drop_keys}).raise_for_status()


def plant_lost_delivery(control: httpx.Client, receiver_url: str, planted: Planted) -> None:
    """One order_update execution whose webhook never arrives and whose send node was renamed
    in n8n: the gap resync finds it and cannot read its payload."""
    report = control.post(
        "/_sim/n8n/send",
        json={
            "target": receiver_url,
            "workflow_key": LOST_WORKFLOW,
            "count": 1,
            "drop_rate": 1.0,
            "send_node": RENAMED_SEND_NODE,
        },
        timeout=120,
    ).json()
    (planted.lost_execution,) = report["executions"]


def one_round(
    control: httpx.Client,
    receiver_url: str,
    ledger: Ledger,
    planted: Planted,
    rng: random.Random,
) -> None:
    """A round of business: stock and leads change, ERP records are edited, added and
    deleted, sellers are edited, added and removed, webhooks are sent (some dropped, some
    twice); in the first round one vehicle and one seller are dropped from one read."""
    ledger.rounds += 1
    control.post("/_sim/dealer/mutate", json={"change": 3, "add": 2, "remove": 1})
    control.post("/_sim/dealer/leads/mutate", json={"change": 2, "add": 2})
    ledger.changes.update({"vehicles": 6, "leads": 4})
    removed = 1 if ledger.rounds % ERP_DELETE_EVERY == 0 else 0
    for entity, mutation in (
        ("products", {"change": 2, "add": 1}),
        ("variants", {"change": 2, "add": 1, "remove": removed}),
        ("customers", {"change": 2, "add": 1, "remove": removed}),
    ):
        control.post("/_sim/erp/mutate", json={"entity": entity, **mutation}).raise_for_status()
        ledger.changes[f"erp {entity}"] += sum(mutation.values())
    _edit_sheet(control, ledger, rng)
    if ledger.rounds == 1:
        stock = control.get("/_sim/dealer/stock").json()["items"]
        once = next(
            v["StockNumber"] for v in stock[10:] if v["StockNumber"] != planted.lost_vehicle
        )
        rows = control.get("/_sim/sheets/rows").json()["rows"]
        seller = rows[5][0]
        set_faults(
            control,
            [
                {"key": planted.lost_vehicle, "times": 1_000_000},
                {"key": once, "times": 1},
                {"key": seller, "times": 1},
            ],
        )
        ledger.healed_drops += [once, seller]
    for workflow in WORKFLOWS:
        report = control.post(
            "/_sim/n8n/send",
            json={
                "target": receiver_url,
                "workflow_key": workflow,
                "count": WEBHOOKS_PER_ROUND,
                "drop_rate": WEBHOOK_DROP_RATE,
                "duplicate_rate": WEBHOOK_DUPLICATE_RATE,
            },
            timeout=300,
        ).json()
        ledger.executions.setdefault(workflow, []).extend(report["executions"])
        ledger.dropped += len(report["dropped"])
        ledger.duplicated += len(report["duplicated"])


def _edit_sheet(control: httpx.Client, ledger: Ledger, rng: random.Random) -> None:
    rows = control.get("/_sim/sheets/rows").json()["rows"]
    header, sellers = rows[0], [row for row in rows[1:] if row and row[0]]
    edited = rng.choice(sellers)
    values = dict(zip(header, edited, strict=False))
    values["Phone"] = f"04{rng.randrange(10**8):08d}"
    control.put(f"/_sim/sheets/sellers/{edited[0]}", json=values).raise_for_status()
    added = f"AA9{rng.randrange(10**6):06d}"
    control.put(
        f"/_sim/sheets/sellers/{added}",
        json={
            "Name": "Soak Seller",
            "Inquiry Date": "03/11/2026",
            "Email": f"{added.lower()}@example.com",
            "Property Address": f"{rng.randrange(1, 999)} Soak St",
            "Property Type": "House",
            "Asking Price": "$650,000",
        },
    ).raise_for_status()
    removed = rng.choice([row for row in sellers if row[0] != edited[0]])
    control.delete(f"/_sim/sheets/sellers/{removed[0]}").raise_for_status()
    ledger.changes["sellers"] += 3


def stop_changing(control: httpx.Client, planted: Planted) -> None:
    """Sources stop changing and stop failing, except the planted faults."""
    control.post(
        "/_sim/faults", json={"drop_keys": [{"key": planted.lost_vehicle, "times": 1_000_000}]}
    ).raise_for_status()


def faults_injected(control: httpx.Client) -> dict[str, int]:
    return control.get("/_sim/stats").json()["faults"]


def source_requests(control: httpx.Client) -> int:
    """Source requests the simulator has served so far (its control API not counted)."""
    return sum(row["count"] for row in control.get("/_sim/stats").json()["requests"])
