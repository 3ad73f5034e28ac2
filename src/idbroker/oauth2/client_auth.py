"""Client authentication at the token, introspection and revocation endpoints
(RFC 6749 §2.3, OIDC Core §9: none, client_secret_basic, client_secret_post, private_key_jwt)."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from urllib.parse import unquote

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..clients.registry import ClientRegistry
from ..security import loads_bounded
from ..store.models import Client
from . import constants as c
from . import fapi
from .errors import InvalidClientError, InvalidRequestError


@dataclass
class Authenticated:
    client: Client
    method: str


class JtiCache:
    """Seen client-assertion jtis (RFC 7523 §3 item 7), kept until their exp."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def add(self, key: str, exp: float) -> bool:
        now = time.time()
        if len(self._seen) > 50000:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
        if key in self._seen and self._seen[key] > now:
            return False
        self._seen[key] = exp
        return True


class ClientAuthenticator:
    def __init__(self, registry: ClientRegistry, token_endpoint: str, issuer: str):
        self.registry = registry
        self.audiences = {token_endpoint, issuer}
        self.jtis = JtiCache()

    def authenticate(self, authorization: str | None, form: dict[str, str], *,
                     allow_public: bool = True) -> Authenticated:
        found = self._authenticate(authorization, form, allow_public=allow_public)
        fapi.check_client_authentication(found.client, found.method)  # FAPI 2.0 §5.3.2.1
        return found

    def _authenticate(self, authorization: str | None, form: dict[str, str], *,
                      allow_public: bool) -> Authenticated:
        basic = _parse_basic(authorization)
        assertion_type = form.get("client_assertion_type")
        methods = sum([basic is not None, "client_secret" in form, assertion_type is not None])
        if methods > 1:
            raise InvalidRequestError("use exactly one client authentication method (RFC 6749 §2.3)")
        if basic is not None:
            client_id, secret = basic
            if form.get("client_id") not in (None, client_id):
                raise InvalidRequestError("client_id does not match the authenticated client")
            return self._secret(client_id, secret, c.AUTH_BASIC)
        if "client_secret" in form:
            return self._secret(form.get("client_id", ""), form["client_secret"], c.AUTH_POST)
        if assertion_type is not None:
            return self._assertion(form)
        client_id = form.get("client_id")
        if not client_id:
            raise InvalidClientError("client authentication is required", status_code=401)
        client = self.registry.get(client_id)
        if client is None or client.token_endpoint_auth_method != c.AUTH_NONE or not allow_public:
            raise InvalidClientError("client authentication failed")
        return Authenticated(client, c.AUTH_NONE)

    def _secret(self, client_id: str, secret: str, method: str) -> Authenticated:
        client = self.registry.get(client_id) if client_id else None
        ok = client is not None and self.registry.verify_secret(client, secret)
        if not ok or client is None or client.token_endpoint_auth_method != method:
            raise InvalidClientError("client authentication failed")
        return Authenticated(client, method)

    def _assertion(self, form: dict[str, str]) -> Authenticated:
        """RFC 7523 §2.2 / §3 client assertion signed with the client's registered key."""
        if form.get("client_assertion_type") != c.CLIENT_ASSERTION_TYPE_JWT:
            raise InvalidClientError("unsupported client_assertion_type")
        assertion = form.get("client_assertion", "")
        client_id = _peek_issuer(assertion)
        client = self.registry.get(client_id) if client_id else None
        if client is None or client.token_endpoint_auth_method != c.AUTH_PRIVATE_KEY_JWT or not client.jwks:
            raise InvalidClientError("client authentication failed")
        try:
            token = jwt.decode(assertion, KeySet.import_key_set(client.jwks),
                               algorithms=["ES256", "RS256", "PS256", "EdDSA"])
        except (JoseError, ValueError) as exc:
            raise InvalidClientError("client assertion signature is invalid", detail=str(exc)) from None
        claims = token.claims
        now = time.time()
        aud = claims.get("aud")
        auds = {aud} if isinstance(aud, str) else set(aud or [])
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise InvalidClientError("client assertion iss and sub must be the client_id")
        if not auds & self.audiences:
            raise InvalidClientError("client assertion audience must be the token endpoint or issuer")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= now or exp > now + 3600:
            raise InvalidClientError("client assertion is expired or too long-lived")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not self.jtis.add(f"{client.client_id}:{jti}", exp):
            raise InvalidClientError("client assertion jti is missing or was already used")
        if form.get("client_id") not in (None, client.client_id):
            raise InvalidRequestError("client_id does not match the client assertion")
        return Authenticated(client, c.AUTH_PRIVATE_KEY_JWT)


MAX_ASSERTION = 16384


def _peek_issuer(assertion: str) -> str | None:
    """The unverified `iss` of a JWS, only to find which client's keys verify it. The payload is
    bounded JSON; one that is not never reaches the JWT library (which would parse it unbounded
    once the signature checks out)."""
    parts = assertion.split(".")
    if len(parts) != 3 or len(assertion) > MAX_ASSERTION:
        return None
    try:
        payload = loads_bounded(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)), MAX_ASSERTION)
    except ValueError:
        return None
    iss = payload.get("iss") if isinstance(payload, dict) else None
    return iss if isinstance(iss, str) else None


def _parse_basic(header: str | None) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: client_id and secret are form-urlencoded before Base64."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidClientError("malformed Basic authorization header") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClientError("malformed Basic authorization header")
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
