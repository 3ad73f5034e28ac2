"""ID tokens (OIDC Core §2, §3.1.3.6 at_hash / c_hash)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from ..keys.keystore import KeyStore
from ..security import b64url


def half_hash(value: str, alg: str) -> str:
    """Left-most half of the hash of the ASCII value, base64url (OIDC Core §3.1.3.6, §3.3.2.11).
    ES256 and RS256 both use SHA-256."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


class IdTokens:
    def __init__(self, issuer: str, keys: KeyStore):
        self.issuer = issuer
        self.keys = keys

    def issue(self, *, client_id: str, alg: str, sub: str, ttl: int, auth_time: int,
              nonce: str | None = None, sid: str | None = None, acr: str | None = None,
              amr: list[str] | None = None, access_token: str | None = None, code: str | None = None,
              extra: dict[str, Any] | None = None, audience: str | list[str] | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "sub": sub, "aud": audience or client_id, "azp": client_id,
                                  "iat": now, "exp": now + ttl, "auth_time": auth_time}
        if nonce is not None:
            claims["nonce"] = nonce
        if sid:
            claims["sid"] = sid
        if acr:
            claims["acr"] = acr
        if amr:
            claims["amr"] = amr
        if access_token:
            claims["at_hash"] = half_hash(access_token, alg)
        if code:
            claims["c_hash"] = half_hash(code, alg)
        for key, value in (extra or {}).items():
            claims.setdefault(key, value)
        return self.keys.sign(claims, typ="JWT", alg=alg)
