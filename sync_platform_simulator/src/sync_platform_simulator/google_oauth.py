"""Google's OAuth 2.0 token endpoint for a service account (JWT-bearer grant), simulated, and
the bearer-token check the simulated Google APIs (GA4, Sheets) share.

`GET /_sim/google/service_account` hands out a JSON key whose `token_uri` points here, so the
production path runs end to end: google-auth signs an RS256 JWT with the key, posts it to
`/google/oauth2/token`, and gets a bearer token the simulated APIs accept until it expires.
The assertion is checked as Google checks it (signature, `iss`, `aud`, `exp`/`iat`, `scope`)
and refused with Google's `{"error": "invalid_grant", "error_description": …}`.

The RSA key is generated once per process for each seed (RSA keys cannot be derived from a
seed with `cryptography`), so a reset keeps the key and a key file stays valid all session.
Reference: docs/sources/ga4_api.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # the `aud` google-auth always signs
LEGACY_TOKEN_URIS = frozenset(
    {
        GOOGLE_TOKEN_URI,
        "https://accounts.google.com/o/oauth2/token",
        "https://www.googleapis.com/oauth2/v4/token",
    }
)
TOKEN_PATH = "/google/oauth2/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_ASSERTION_SECONDS = 3600  # Google accepts assertions valid for at most an hour
CLOCK_SKEW_SECONDS = 300
SHORT_LIVED = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)


class GoogleApiError(HTTPException):
    """An error in Google's API shape; the app's handler wraps `detail` in `{"error": …}`."""

    def __init__(self, code: int, status: str, message: str):
        super().__init__(code, detail={"code": code, "message": message, "status": status})


class GoogleOAuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_email: str = "sync-platform@sim-project.iam.gserviceaccount.com"
    project_id: str = "sim-project"
    token_lifetime_seconds: int = Field(default=3600, ge=1, le=3600)


@dataclass(frozen=True)
class IssuedToken:
    client_email: str
    scopes: frozenset[str]
    expires_at: float  # epoch seconds


class TokenRefused(Exception):
    """The token endpoint's 400: an OAuth error code and Google's description."""

    def __init__(self, error: str, description: str):
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@lru_cache(maxsize=8)
def service_account_private_key(seed: int) -> rsa.RSAPrivateKey:
    """The simulated service account's key: one per seed, generated once per process."""
    del seed  # part of the cache key only
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class GoogleOAuth:
    """The service account, and the tokens issued for it. Tokens live in memory until they
    expire or the simulator is reset."""

    def __init__(self, seed: int, settings: GoogleOAuthSettings | None = None):
        self.settings = (settings or GoogleOAuthSettings()).model_copy()
        self._private_key = service_account_private_key(seed)
        public_der = self._private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.private_key_id = hashlib.sha1(public_der).hexdigest()
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}
        self.issued = 0
        self.refused = 0
        self.deleted = False  # the service account was deleted: every grant is refused
        self._revoke_after: int | None = None  # API requests to serve before revoking all

    def service_account_info(self, token_uri: str) -> dict[str, str]:
        """The JSON key file, as Google Cloud IAM issues it, pointed at this simulator."""
        pem = self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        email = self.settings.client_email
        return {
            "type": "service_account",
            "project_id": self.settings.project_id,
            "private_key_id": self.private_key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(int(self.private_key_id[:15], 16)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
            + email.replace("@", "%40"),
            "universe_domain": "googleapis.com",
        }

    # -- the grant -------------------------------------------------------------------------

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        try:
            header_b64, payload_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(payload_b64))
            signature = _b64url_decode(signature_b64)
        except (ValueError, TypeError):
            raise TokenRefused("invalid_grant", "Invalid JWT: malformed assertion.") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenRefused("invalid_grant", "Invalid JWT: malformed assertion.")
        if header.get("alg") != "RS256":
            raise TokenRefused("invalid_grant", "Invalid JWT: algorithm must be RS256.")
        if header.get("kid", self.private_key_id) != self.private_key_id:
            raise TokenRefused("invalid_grant", "Invalid JWT Signature.")
        try:
            self._private_key.public_key().verify(
                signature,
                f"{header_b64}.{payload_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise TokenRefused("invalid_grant", "Invalid JWT Signature.") from None
        return claims

    def exchange(self, form: dict[str, str], own_token_uri: str) -> dict[str, Any]:
        """Check a JWT-bearer grant and issue a token, or raise `TokenRefused`."""
        try:
            return self._exchange(form, own_token_uri)
        except TokenRefused:
            with self._lock:
                self.refused += 1
            raise

    def _exchange(self, form: dict[str, str], own_token_uri: str) -> dict[str, Any]:
        if form.get("grant_type") != JWT_BEARER_GRANT:
            raise TokenRefused(
                "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}"
            )
        claims = self._verified_claims(form.get("assertion", ""))
        if claims.get("iss") != self.settings.client_email or self.deleted:
            raise TokenRefused("invalid_grant", "Invalid grant: account not found")
        if claims.get("aud") not in LEGACY_TOKEN_URIS | {own_token_uri}:
            raise TokenRefused("invalid_grant", "Invalid JWT: Failed audience check.")
        now = time.time()
        try:
            issued_at, expires = float(claims["iat"]), float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            raise TokenRefused("invalid_grant", SHORT_LIVED) from None
        if (
            expires < now - CLOCK_SKEW_SECONDS
            or issued_at > now + CLOCK_SKEW_SECONDS
            or expires - issued_at > MAX_ASSERTION_SECONDS
        ):
            raise TokenRefused("invalid_grant", SHORT_LIVED)
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            raise TokenRefused(
                "invalid_scope", "Invalid OAuth scope or ID token audience provided."
            )
        lifetime = self.settings.token_lifetime_seconds
        token = "ya29.sim-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = IssuedToken(self.settings.client_email, scopes, now + lifetime)
            self.issued += 1
        return {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}

    # -- checking bearer tokens ------------------------------------------------------------

    def lookup(self, token: str) -> IssuedToken | None:
        """The token as issued, or None if it was never issued here or has expired."""
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None or issued.expires_at <= time.time():
            return None
        return issued

    def revoke(self, token: str) -> bool:
        """Revoke one issued token (Google's revoke endpoint); False if it is not live."""
        with self._lock:
            return self._tokens.pop(token, None) is not None

    def revoke_all(self, after_requests: int = 0) -> int:
        """Revoke every token issued so far, as Google does when a key is deleted or the
        account's access is withdrawn: tokens that have not expired are refused from now,
        or once `after_requests` more API requests have been served with them."""
        with self._lock:
            if after_requests:
                self._revoke_after = after_requests
                return 0
            revoked = len(self._tokens)
            self._tokens.clear()
        return revoked

    def count_request(self) -> None:
        """An API request arrived: a revocation planned for this moment happens now."""
        with self._lock:
            if self._revoke_after is None:
                return
            self._revoke_after -= 1
            if self._revoke_after < 0:
                self._revoke_after = None
                self._tokens.clear()

    def is_valid(self, token: str) -> bool:
        return self.lookup(token) is not None


def require_bearer(
    oauth: GoogleOAuth,
    authorization: str | None,
    *,
    static_token: str | None,
    scopes: frozenset[str],
) -> str:
    """The caller's bearer token if Google would accept it for an API needing one of
    `scopes`, else the 401/403 Google answers. A static token stands in with every scope."""
    oauth.count_request()
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise GoogleApiError(
            401,
            "UNAUTHENTICATED",
            "Request is missing required authentication credential. Expected OAuth 2 access "
            "token, login cookie or other valid authentication credential.",
        )
    if static_token is not None and token == static_token:
        return token
    issued = oauth.lookup(token)
    if issued is None:
        raise GoogleApiError(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
        )
    if not issued.scopes & scopes:
        raise GoogleApiError(
            403, "PERMISSION_DENIED", "Request had insufficient authentication scopes."
        )
    return token


# -- the token endpoint --------------------------------------------------------------------


def google_oauth(request: Request) -> GoogleOAuth:
    """FastAPI dependency: the service account of the simulator serving this request."""
    return request.app.state.simulator.google_oauth


OAuth = Annotated[GoogleOAuth, Depends(google_oauth)]
router = APIRouter(prefix="/google")


@router.post("/oauth2/token")
async def token(request: Request, oauth: OAuth) -> JSONResponse:
    """The JWT-bearer grant (form-encoded, as google-auth posts it)."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    form = {name: values[0] for name, values in fields.items()}
    own_uri = str(request.url.replace(query=""))
    try:
        return JSONResponse(oauth.exchange(form, own_uri))
    except TokenRefused as refused:
        return JSONResponse(
            {"error": refused.error, "error_description": refused.description}, status_code=400
        )


@router.post("/revoke")
async def revoke(request: Request, oauth: OAuth) -> JSONResponse:
    """Google's revoke endpoint: `token` as a query or form parameter; 200 `{}` when it was
    revoked, else 400 `invalid_token`."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = request.query_params.get("token") or (fields.get("token") or [""])[0]
    if oauth.revoke(token):
        return JSONResponse({})
    return JSONResponse(
        {"error": "invalid_token", "error_description": "Token expired or revoked"},
        status_code=400,
    )


# -- the service account's part of the control API ------------------------------------------

control_router = APIRouter(prefix="/_sim/google")


@control_router.get("/service_account")
def service_account(request: Request, oauth: OAuth) -> dict[str, str]:
    """The service account's JSON key, its token_uri pointing at this simulator."""
    token_uri = str(request.base_url).rstrip("/") + TOKEN_PATH
    return oauth.service_account_info(token_uri)


@control_router.get("/tokens")
def tokens(oauth: OAuth) -> dict[str, int]:
    """How many grants the endpoint has answered with a token, and refused, since the last
    reset."""
    return {"issued": oauth.issued, "refused": oauth.refused}


class Revocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_requests: int = Field(default=0, ge=0)


@control_router.post("/revoke_all")
def revoke_all(oauth: OAuth, plan: Revocation | None = None) -> dict[str, int]:
    """Revoke every live token server side, now or once `after_requests` more API requests
    have been served: the APIs answer 401 to those tokens from then on."""
    return {"revoked": oauth.revoke_all((plan or Revocation()).after_requests)}


class AccountState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deleted: bool


@control_router.post("/account")
def set_account(state: AccountState, oauth: OAuth) -> AccountState:
    """Delete (or restore) the service account: while deleted, the token endpoint refuses
    every grant with `invalid_grant` "Invalid grant: account not found"."""
    oauth.deleted = state.deleted
    return state
