"""Edges Google documents, as the simulator serves them: tokens revoked before they expire
(the revoke endpoint, and server side), a deleted service account's refused grants, and
runReport's cap on rows per response whatever `limit` asks. Tokens come from google-auth's
own JWT-bearer exchange, as any Google client gets them."""

from __future__ import annotations

import google.auth.exceptions
import google.auth.transport.requests
import httpx
import pytest
from google.oauth2 import service_account

RESET = {"seed": 42}
SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
RUN_REPORT = "/ga4/v1beta/properties/123456789:runReport"
REPORT = {
    "dateRanges": [{"startDate": "30daysAgo", "endDate": "yesterday"}],
    "dimensions": [{"name": "date"}, {"name": "deviceCategory"}],
    "metrics": [{"name": "sessions"}],
}


def credentials(sim: httpx.Client) -> service_account.Credentials:
    info = sim.get("/_sim/google/service_account").json()
    return service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])


def issued_token(sim: httpx.Client) -> str:
    creds = credentials(sim)
    creds.refresh(google.auth.transport.requests.Request())
    return creds.token


def report(sim: httpx.Client, token: str, **extra) -> httpx.Response:
    return sim.post(RUN_REPORT, json=REPORT | extra, headers={"Authorization": f"Bearer {token}"})


def test_a_revoked_token_is_refused_although_it_has_not_expired(sim):
    token = issued_token(sim)
    assert report(sim, token).status_code == 200
    assert sim.post("/google/revoke", params={"token": token}).status_code == 200
    refused = report(sim, token)
    assert refused.status_code == 401 and refused.json()["error"]["status"] == "UNAUTHENTICATED"
    again = sim.post("/google/revoke", data={"token": token})
    assert again.status_code == 400 and again.json()["error"] == "invalid_token"
    assert report(sim, issued_token(sim)).status_code == 200  # a new token works


def test_a_server_side_revocation_can_wait_for_a_number_of_requests(sim):
    token = issued_token(sim)
    sim.post("/_sim/google/revoke_all", json={"after_requests": 2}).raise_for_status()
    assert [report(sim, token).status_code for _ in range(4)] == [200, 200, 401, 401]


def test_a_deleted_account_gets_invalid_grant_and_the_refusals_are_counted(sim):
    sim.post("/_sim/google/account", json={"deleted": True}).raise_for_status()
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        credentials(sim).refresh(google.auth.transport.requests.Request())
    assert sim.get("/_sim/google/tokens").json() == {"issued": 0, "refused": 1}
    sim.post("/_sim/google/account", json={"deleted": False}).raise_for_status()
    issued_token(sim)
    assert sim.get("/_sim/google/tokens").json() == {"issued": 1, "refused": 1}


def test_run_report_serves_at_most_the_cap_whatever_limit_asks(sim):
    sim.post("/_sim/ga4/reset", json={"max_rows_per_response": 3}).raise_for_status()
    page = report(sim, "sim-ga4-token", limit=10, offset=0).json()
    assert len(page["rows"]) == 3 and page["rowCount"] > 10
    last = report(sim, "sim-ga4-token", limit=10, offset=page["rowCount"] - 2).json()
    assert len(last["rows"]) == 2


def test_a_bigger_site_serves_a_landing_page_row_per_page_a_day(sim):
    def landing_pages() -> list[str]:
        body = {
            "dateRanges": [{"startDate": "yesterday", "endDate": "yesterday"}],
            "dimensions": [{"name": "landingPage"}],
            "metrics": [{"name": "sessions"}],
        }
        rows = report(sim, "sim-ga4-token", **body).json()["rows"]
        return [row["dimensionValues"][0]["value"] for row in rows]

    assert len(landing_pages()) <= 150  # the default site: 150 pages, fewer with few sessions
    sim.post(
        "/_sim/ga4/reset",
        json={"landing_pages": 2000, "properties": [{"sessions_per_day": 90_000}]},
    ).raise_for_status()
    pages = landing_pages()
    assert len(pages) == 2000 and "/stock/STK001992" in pages and "/stock/STK001993" not in pages
