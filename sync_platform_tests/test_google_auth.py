"""Google access tokens (sources/google_auth.py) against the simulated token endpoint over
real loopback HTTP: caching, refresh, refusals, and where the key comes from."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import _helpers, crypt, jwt

from sync_platform.errors import ConfigurationError, SourceUnavailableError
from sync_platform.sources.google_auth import (
    ANALYTICS_READONLY,
    ServiceAccountToken,
    load_service_account_info,
)

TOKEN_PATH = "/google/oauth2/token"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SETTING = "GA4_SERVICE_ACCOUNT_JSON"


@pytest.fixture
def key(simulator) -> dict:
    return simulator.google("GET", "/service_account")


def issued(simulator) -> int:
    return simulator.google("GET", "/tokens")["issued"]


def other_private_key() -> str:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def api_status(simulator, token: str) -> int:
    """What the simulated GA4 answers to this bearer token."""
    return simulator.http.post(
        "/ga4/v1beta/properties/123456789:runReport",
        json={
            "dateRanges": [{"startDate": "today", "endDate": "today"}],
            "metrics": [{"name": "sessions"}],
        },
        headers={"Authorization": f"Bearer {token}"},
    ).status_code


def test_a_token_is_fetched_once_and_reused_until_it_expires(simulator, key):
    tokens = ServiceAccountToken(key, [ANALYTICS_READONLY])
    first = tokens.token()
    assert [tokens.token() for _ in range(3)] == [first] * 3
    assert issued(simulator) == 1
    assert simulator.served(TOKEN_PATH) == {(TOKEN_PATH, 200): 1}
    assert api_status(simulator, first) == 200


def test_a_token_is_refreshed_once_it_nears_expiry(simulator):
    # google-auth renews a token REFRESH_THRESHOLD before it expires: this one is fresh
    # for about one second.
    lifetime = int(_helpers.REFRESH_THRESHOLD.total_seconds()) + 1
    simulator.http.post(
        "/_sim/reset", json={"google_oauth": {"token_lifetime_seconds": lifetime}}
    ).raise_for_status()
    tokens = ServiceAccountToken(simulator.google("GET", "/service_account"), [ANALYTICS_READONLY])
    first = tokens.token()
    assert tokens.token() == first and issued(simulator) == 1
    time.sleep(1.2)
    second = tokens.token()
    assert second != first and issued(simulator) == 2
    assert api_status(simulator, second) == 200


def test_an_expired_token_is_refused_by_the_api(simulator):
    simulator.http.post(
        "/_sim/reset", json={"google_oauth": {"token_lifetime_seconds": 1}}
    ).raise_for_status()
    form = {"grant_type": JWT_BEARER, "assertion": assertion(simulator)}
    token = simulator.http.post(TOKEN_PATH, data=form).json()["access_token"]
    assert api_status(simulator, token) == 200
    time.sleep(1.1)
    assert api_status(simulator, token) == 401


def assertion(simulator, key: dict | None = None, **claims) -> str:
    key = key or simulator.google("GET", "/service_account")
    now = int(time.time())
    payload = {
        "iss": key["client_email"],
        "aud": GOOGLE_TOKEN_URI,
        "scope": ANALYTICS_READONLY,
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    signer = crypt.RSASigner.from_service_account_info(key)
    return jwt.encode(signer, payload).decode()


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        (
            {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
            "invalid_grant",
            "short-lived",
        ),
        ({"aud": "https://example.com/token"}, "invalid_grant", "audience"),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant", "account not found"),
        ({"scope": ""}, "invalid_scope", "scope"),
    ],
)
def test_the_token_endpoint_checks_the_assertion_as_google_does(
    simulator, claims, error, description
):
    form = {"grant_type": JWT_BEARER, "assertion": assertion(simulator, **claims)}
    response = simulator.http.post(TOKEN_PATH, data=form)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert description in response.json()["error_description"]
    assert issued(simulator) == 0


def test_a_key_the_account_does_not_own_is_refused_without_leaking_it(simulator, key):
    foreign = {**key, "private_key": other_private_key()}
    with pytest.raises(ConfigurationError) as err:
        ServiceAccountToken(foreign, [ANALYTICS_READONLY]).token()
    message = str(err.value)
    assert f"Google refused a token for {key['client_email']}" in message
    assert "Invalid JWT Signature" in message
    assert "PRIVATE KEY" not in message and foreign["private_key"][40:80] not in message
    assert simulator.served(TOKEN_PATH) == {(TOKEN_PATH, 400): 1}  # not retried
    assert issued(simulator) == 0


def test_a_token_answer_cut_short_is_an_outage_not_a_refusal(simulator, key):
    simulator.faults(truncate_next=1)
    with pytest.raises(SourceUnavailableError, match="not a token"):
        ServiceAccountToken(key, [ANALYTICS_READONLY]).token()
    # not remembered as a refusal: the next ask gets a token at once
    assert ServiceAccountToken(key, [ANALYTICS_READONLY]).token()
    assert issued(simulator) == 2


def test_an_unusable_key_is_a_configuration_error_without_the_key_in_it(key):
    broken = {
        **key,
        "private_key": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
    }
    with pytest.raises(ConfigurationError) as err:
        ServiceAccountToken(broken, [ANALYTICS_READONLY])
    assert key["client_email"] in str(err.value) and "unusable" in str(err.value)
    assert "c2VjcmV0" not in str(err.value)


def test_the_key_loads_from_a_file_path_or_from_json_text(simulator, key, tmp_path):
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(key), encoding="utf-8")
    from_file = load_service_account_info(str(path), SETTING)
    from_text = load_service_account_info(f"  {json.dumps(key)}\n", SETTING)
    assert from_file == from_text == key
    tokens = ServiceAccountToken(from_file, [ANALYTICS_READONLY])
    assert api_status(simulator, tokens.token()) == 200


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("/no/such/key.json", "neither service-account JSON nor a path"),
        ("{not json", "does not contain valid JSON"),
        ('{"type": "authorized_user", "client_email": "a@b"}', "not a service-account key"),
    ],
)
def test_a_bad_key_setting_names_the_setting_and_not_the_value(value, problem):
    with pytest.raises(ConfigurationError) as err:
        load_service_account_info(value, SETTING)
    assert SETTING in str(err.value) and problem in str(err.value)
    assert value not in str(err.value)


def test_the_token_endpoint_also_accepts_its_own_url_as_audience(simulator, key):
    # google-auth always signs Google's token URI as the audience, whatever token_uri says;
    # a hand-made assertion may name the endpoint it is posted to instead.
    assert key["token_uri"] == f"{simulator.url}{TOKEN_PATH}"
    own = assertion(simulator, key, aud=key["token_uri"])
    response = httpx.post(key["token_uri"], data={"grant_type": JWT_BEARER, "assertion": own})
    assert response.status_code == 200 and response.json()["token_type"] == "Bearer"
