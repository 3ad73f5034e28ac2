"""ID tokens (OIDC Core §2, §3.1.3.6 at_hash / c_hash) and the subject a client sees (§8).

Pairwise subjects (OIDC Core §8.1): for a client registered with subject_type pairwise the `sub`
is SHA-256(sector host, local sub, salt), base64url; the salt is derived from the server's secret
key, so the value is stable for a sector across restarts and nodes, differs across sectors, and
cannot be computed, or reversed to the local `sub`, without the key. Every place that tells a
client who the user is uses `subject`: ID tokens, signed or plain userinfo, introspection and
logout tokens."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from ..clients.metadata import sector_of
from ..keys.keystore import KeyStore
from ..oauth2 import constants as c
from ..security import b64url

if TYPE_CHECKING:
    from ..store.models import Client


def half_hash(value: str, alg: str) -> str:
    """Left-most half of the hash of the ASCII value, base64url (OIDC Core §3.1.3.6, §3.3.2.11).
    ES256 and RS256 both use SHA-256."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


class IdTokens:
    def __init__(self, issuer: str, keys: KeyStore, pairwise_salt: bytes = b""):
        self.issuer = issuer
        self.keys = keys
        self.pairwise_salt = pairwise_salt

    def subject(self, client: Client | None, sub: str) -> str:
        """The `sub` `client` sees for the local subject `sub` (OIDC Core §8)."""
        if client is None or getattr(client, "subject_type", c.SUBJECT_PUBLIC) != c.SUBJECT_PAIRWISE:
            return sub
        sector = sector_of(client)
        digest = hashlib.sha256(b"\0".join((sector.encode(), sub.encode(), self.pairwise_salt))).digest()
        return b64url(digest)

    def sign_userinfo(self, client: Client, claims: dict[str, Any]) -> str:
        """OIDC Core §5.3.2: a signed userinfo response carries iss and aud."""
        body = {**claims, "iss": self.issuer, "aud": client.client_id}
        return self.keys.sign(body, typ="JWT", alg=client.userinfo_signed_response_alg)

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
