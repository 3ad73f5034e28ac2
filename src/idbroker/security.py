"""Small primitives shared by every module: random values, digests, keyed hashes, sub-keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # what random_token produces


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random value with `nbytes` of entropy (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    """Lookup digest of a high-entropy token (codes, refresh tokens, session ids)."""
    return hashlib.sha256(value.encode()).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def derive_key(master: bytes, purpose: str, length: int = 32) -> bytes:
    """An independent sub-key of the configured secret for one purpose (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(master)


class KeyedHasher:
    """HMAC-SHA256 with a server key: for client secrets, which must verify fast at the token
    endpoint. Their 256-bit entropy makes a slow hash pointless; the key makes a stolen table
    useless on its own."""

    def __init__(self, key: bytes):
        self._key = key

    def hash(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def verify(self, value: str, digest: str | None) -> bool:
        if not digest:
            return False
        return hmac.compare_digest(self.hash(value), digest)


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
