"""Request objects (RFC 9101, OIDC Core §6.1): the authorization request's parameters as the
claims of a JWT the client signs with one of its registered keys (`jwks`).

`RequestObjects.parameters` checks, in order: a compact JWS, or a compact JWE to the broker's
encryption key (RFC 9101 §6.1, keys/keystore.py ENC_ALGS) whose plaintext is a JWS (a nested JWT,
signed then encrypted, checked as one sent in the clear) or else the claims themselves (encrypted
but unsigned: refused when the client requires signed objects); `alg` none only when the client does not require signed
objects (§10.5 require_signed_request_object), otherwise an asymmetric alg of OBJECT_ALGS verified
with the client's keys; `client_id` inside equal to the one outside (§5); `iss` the client and
`aud` this issuer for a signed object (§4, §10.2); `exp` not passed and `nbf` reached (§10.2);
`jti`, when present, not seen before (§10.8, oauth2/used_jtis.py). RFC 9101 §5: only the object's
parameters are used, the query's are ignored (client_id aside).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..security import loads_bounded
from ..store.models import Client
from .errors import OAuth2Error
from .used_jtis import UsedJtis

OBJECT_ALGS = ("ES256", "RS256", "PS256", "EdDSA")  # discovery: request_object_signing_alg_values_supported
MAX_OBJECT = 16384
REGISTERED_CLAIMS = ("iss", "aud", "exp", "nbf", "iat", "jti", "sub")
MAX_LIFETIME = 3600  # a jti is remembered this long when the object has no exp


class InvalidRequestObjectError(OAuth2Error):
    """RFC 9101 §6.2 / OIDC Core §3.1.2.6: the request object is invalid."""

    error = "invalid_request_object"


def _part(segment: str) -> Any:
    return loads_bounded(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)), MAX_OBJECT)


class RequestObjects:
    def __init__(self, issuer: str, used: UsedJtis, decrypt: Callable[[str], bytes] | None = None):
        self.issuer = issuer
        self.used = used
        self.decrypt = decrypt  # the broker's JWE decryption (KeyStore.decrypt); None: not accepted

    def parameters(self, client: Client, token: str) -> dict[str, str]:
        """The authorization parameters a request object of `client` carries, or
        InvalidRequestObjectError. Blocking (a jti is written to the store)."""
        if len(token) > MAX_OBJECT:
            raise InvalidRequestObjectError("the request object is too large")
        header: Any = {"alg": "none"}
        encrypted_claims = None
        if token.count(".") == 4:
            token, encrypted_claims = self._decrypted(token)
        if encrypted_claims is None:
            if token.count(".") != 2:
                raise InvalidRequestObjectError("the request object is not a JWT")
            try:
                header = _part(token.split(".")[0])
            except (ValueError, json.JSONDecodeError):
                raise InvalidRequestObjectError("the request object header is not JSON") from None
        alg = header.get("alg") if isinstance(header, dict) else None
        signed = alg != "none"
        if encrypted_claims is not None:
            if client.require_signed_request_object:
                raise InvalidRequestObjectError("this client must sign its request objects")
            claims = encrypted_claims
        elif not signed:
            if client.require_signed_request_object:
                raise InvalidRequestObjectError("this client must sign its request objects")
            if token.split(".")[2]:
                raise InvalidRequestObjectError("an unsigned request object must have an empty signature")
            try:
                claims = _part(token.split(".")[1])
            except (ValueError, json.JSONDecodeError):
                raise InvalidRequestObjectError("the request object is not JSON") from None
        else:
            if alg not in OBJECT_ALGS:
                raise InvalidRequestObjectError("the request object alg is not supported")
            if not client.jwks:
                raise InvalidRequestObjectError("the client has no registered keys to verify its request object")
            try:
                payload = jws.deserialize_compact(token, KeySet.import_key_set(client.jwks), algorithms=[alg]).payload
                claims = loads_bounded(payload, MAX_OBJECT)
            except (JoseError, ValueError, TypeError) as exc:
                raise InvalidRequestObjectError("the request object signature is invalid", detail=str(exc)) from None
        if not isinstance(claims, dict):
            raise InvalidRequestObjectError("the request object claims are not a JSON object")
        self._check_claims(client, claims, signed)
        params: dict[str, str] = {}
        for name, value in claims.items():
            if name in REGISTERED_CLAIMS or value is None:
                continue
            params[name] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":")) \
                if isinstance(value, dict | list) else str(value).lower() if isinstance(value, bool) else str(value)
        params["client_id"] = client.client_id
        return params

    def _decrypted(self, token: str) -> tuple[str, Any]:
        """RFC 9101 §6.1: the plaintext of an encrypted request object, as (a JWS to check, None)
        for a nested JWT or ("", the claims) for encrypted claims."""
        if self.decrypt is None:
            raise InvalidRequestObjectError("encrypted request objects are not supported")
        try:
            plaintext = self.decrypt(token).decode("utf-8")
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidRequestObjectError("the encrypted request object cannot be decrypted",
                                            detail=str(exc)) from None
        if plaintext.count(".") == 2 and not plaintext.lstrip().startswith("{"):
            return plaintext, None
        try:
            return "", loads_bounded(plaintext, MAX_OBJECT)
        except ValueError:
            raise InvalidRequestObjectError("the decrypted request object is neither a JWT nor JSON") from None

    def _check_claims(self, client: Client, claims: dict[str, Any], signed: bool) -> None:
        now = time.time()
        if claims.get("client_id", client.client_id) != client.client_id:
            raise InvalidRequestObjectError("the request object client_id differs from the request's")
        if signed:
            if claims.get("iss") != client.client_id:
                raise InvalidRequestObjectError("the request object iss must be the client_id")
            aud = claims.get("aud")
            if self.issuer not in ([aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []):
                raise InvalidRequestObjectError("the request object aud must be this issuer")
        exp, nbf = claims.get("exp"), claims.get("nbf")
        for name, value in (("exp", exp), ("nbf", nbf)):
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise InvalidRequestObjectError(f"the request object {name} is not a number")
        if exp is not None and exp <= now:
            raise InvalidRequestObjectError("the request object expired")
        if nbf is not None and nbf > now + 60:
            raise InvalidRequestObjectError("the request object is not valid yet")
        jti = claims.get("jti")
        if jti is not None:
            if not isinstance(jti, str) or not jti or len(jti) > 512:
                raise InvalidRequestObjectError("the request object jti is invalid")
            until = datetime.fromtimestamp(min(exp, now + MAX_LIFETIME) if exp else now + MAX_LIFETIME, UTC)
            if not self.used.first_use("request_object", client.client_id, jti, until):
                raise InvalidRequestObjectError("the request object was already used", detail="request object replay")
