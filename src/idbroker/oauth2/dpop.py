"""DPoP (RFC 9449): proof-of-possession of a key by the client, checked at the token endpoint and
at the resource endpoints (userinfo), and the binding of tokens to that key (`cnf.jkt`).

A proof is a JWS the client signs for one HTTP request (§4.2). `DpopProofs.check` applies §4.3 in
order: one compact JWS; `typ` dpop+jwt; an asymmetric `alg` of DPOP_ALGS; a public `jwk`; the
signature; `jti`; `htm` and `htu` (the request's method and URI without query and fragment);
`iat` within IAT_WINDOW; when the broker provides nonces (setting `dpop_nonce`), the current
`nonce`; at a resource endpoint, `ath` (the hash of the access token, §4.3 item 11); and the jti
seen for the first time on any worker or node (oauth2/used_jtis.py). Its answer is the key's RFC
7638 thumbprint, the `jkt` that tokens are bound to.

Nonces (§8) need no storage: a nonce is an HMAC of the current time slot (NONCE_SLOT seconds)
under a key derived from the broker's secret, the same on every worker; the current and the
previous slot's are accepted.

The token endpoint names the key of the request it answers in `BOUND_KEY` (a context variable set
for that request only), so that every access token the grant issues carries `cnf.jkt` and the
response says `token_type: DPoP` without each grant handler taking another argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from joserfc.jws import JWSRegistry

from ..security import constant_time_equals, loads_bounded
from .errors import OAuth2Error
from .used_jtis import UsedJtis

DPOP_ALGS = ("ES256", "RS256", "PS256", "EdDSA")  # discovery: dpop_signing_alg_values_supported
TYP = "dpop+jwt"
IAT_WINDOW = 60   # seconds a proof's iat may be off the broker's clock, either way
NONCE_SLOT = 300
MAX_PROOF = 8192
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
TOKEN_TYPE = "DPoP"

# The DPoP key (jkt) of the token request being answered (set by the token endpoint).
BOUND_KEY: ContextVar[str | None] = ContextVar("idbroker_dpop_jkt", default=None)


class _Registry(JWSRegistry):
    """The JWS algorithms of one proof; EdDSA (RFC 8037, what DPoP clients send) without
    joserfc's RFC 9864 deprecation warning."""

    def get_alg(self, name: str) -> Any:
        if name == "EdDSA" and self.allowed and name in self.allowed:
            return self.algorithms[name]
        return super().get_alg(name)


class InvalidDpopProofError(OAuth2Error):
    """RFC 9449 §5: the DPoP proof is missing or invalid."""

    error = "invalid_dpop_proof"


class UseDpopNonceError(OAuth2Error):
    """RFC 9449 §8: the proof must carry the nonce the broker provides in DPoP-Nonce."""

    error = "use_dpop_nonce"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token_hash(token: str) -> str:
    """§4.2 `ath`: base64url SHA-256 of the ASCII access token."""
    return b64(hashlib.sha256(token.encode()).digest())


def htu_of(url: str) -> str:
    """§4.3 item 9: the URI without query and fragment, scheme and host compared case-insensitively."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


class DpopProofs:
    def __init__(self, used: UsedJtis, nonce_key: bytes | None):
        """`nonce_key`: None when the broker does not provide nonces."""
        self.used = used
        self.nonce_key = nonce_key

    def nonce(self, at: float | None = None) -> str | None:
        """The nonce to send now in DPoP-Nonce (None when nonces are off)."""
        if self.nonce_key is None:
            return None
        slot = int((time.time() if at is None else at) // NONCE_SLOT)
        return b64(hmac.new(self.nonce_key, str(slot).encode(), hashlib.sha256).digest()[:18])

    def _nonce_ok(self, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        now = time.time()
        return any(constant_time_equals(value, self.nonce(now - back) or "") for back in (0, NONCE_SLOT))

    def check(self, proof: str, method: str, url: str, *, access_token: str | None = None) -> str:
        """The jkt of a valid, first-seen proof for this request, or InvalidDpopProofError /
        UseDpopNonceError. Blocking (the jti is written to the store)."""
        if not proof or len(proof) > MAX_PROOF or proof.count(".") != 2:
            raise InvalidDpopProofError("the DPoP proof is not a compact JWS")
        try:
            first = proof.split(".")[0]
            header = loads_bounded(base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)), MAX_PROOF)
        except (ValueError, json.JSONDecodeError):
            raise InvalidDpopProofError("the DPoP proof header is not JSON") from None
        if not isinstance(header, dict) or header.get("typ") != TYP:
            raise InvalidDpopProofError("the DPoP proof typ must be dpop+jwt")
        alg, jwk = header.get("alg"), header.get("jwk")
        if alg not in DPOP_ALGS:
            raise InvalidDpopProofError("the DPoP proof alg is not supported")
        if not isinstance(jwk, dict) or any(m in jwk for m in PRIVATE_MEMBERS):
            raise InvalidDpopProofError("the DPoP proof jwk must be a public key")
        try:
            key = JWKRegistry.import_key(jwk)
            payload = jws.deserialize_compact(proof, key, registry=_Registry(algorithms=[alg])).payload
            claims = loads_bounded(payload, MAX_PROOF)
            jkt = key.thumbprint()
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidDpopProofError("the DPoP proof signature is invalid", detail=str(exc)) from None
        if not isinstance(claims, dict):
            raise InvalidDpopProofError("the DPoP proof claims are not a JSON object")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 512:
            raise InvalidDpopProofError("the DPoP proof has no jti")
        if claims.get("htm") != method.upper():
            raise InvalidDpopProofError("the DPoP proof htm does not match the request method")
        htu = claims.get("htu")
        if not isinstance(htu, str) or htu_of(htu) != htu_of(url):
            raise InvalidDpopProofError("the DPoP proof htu does not match the request URI")
        iat, now = claims.get("iat"), time.time()
        if not isinstance(iat, int | float) or isinstance(iat, bool) or abs(now - iat) > IAT_WINDOW:
            raise InvalidDpopProofError("the DPoP proof iat is outside the accepted window")
        if self.nonce_key is not None and not self._nonce_ok(claims.get("nonce")):
            raise UseDpopNonceError("the DPoP proof must carry the nonce in the DPoP-Nonce header")
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str) or not constant_time_equals(ath, access_token_hash(access_token)):
                raise InvalidDpopProofError("the DPoP proof ath does not match the access token")
        until = datetime.fromtimestamp(max(iat, now) + IAT_WINDOW + 1, UTC)
        if not self.used.first_use("dpop", jkt, jti, until):
            raise InvalidDpopProofError("the DPoP proof was already used", detail="DPoP proof replay")
        return jkt
