"""A pending sign-up: what /signup leaves in the browser instead of a session.

Signing up never signs anyone in, and answers an address that has an account exactly like a new
one (the "check your mail" page, the session cookie cleared, this cookie set), so nothing the
browser receives says which it was. The user is signed in only once the address is proven: the
mailed code typed on /verify-email, or the mailed link opened in this browser.

The cookie is sealed (AES-256-GCM under a sub-key of the secret key) and holds the address typed,
an expiry, and a binding: for a new account a digest of its `sub` and password hash, else random
bytes of the same length - the two cookies cannot be told apart, not even by their length. Only
a binding that matches the account lets the cookie sign in, so the cookie of someone who typed
another person's address opens nothing; and a password reset (a new hash) voids a binding made
before it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..security import b64url, derive_key

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ..store.models import User

PATH = "/verify-email"        # where the cookie is sent: the code page and the mailed link
_CONTEXT = b"idbroker pending sign-up"
_MAX_COOKIE = 2048


def binding_of(user: User) -> str:
    return b64url(hashlib.sha256(f"{user.sub}:{user.password_hash or ''}".encode()).digest()[:16])


def unbound() -> str:
    """The binding of an address that already had an account: the same length, matching nothing."""
    return b64url(secrets.token_bytes(16))


@dataclass(frozen=True)
class Pending:
    email: str
    binding: str

    def binds(self, user: User | None) -> bool:
        """Whether this browser created `user` (and its password is still the one chosen then)."""
        return user is not None and not user.disabled and \
            hmac.compare_digest(self.binding.encode(), binding_of(user).encode())


class PendingSignups:
    def __init__(self, master: bytes, cookie: str, ttl: int, secure: bool):
        self._aead = AESGCM(derive_key(master, _CONTEXT.decode()))
        self.cookie = cookie
        self.ttl = ttl
        self.secure = secure

    def seal(self, pending: Pending) -> str:
        body = json.dumps([pending.email, pending.binding, int(time.time()) + self.ttl],
                          separators=(",", ":")).encode()
        nonce = secrets.token_bytes(12)
        return b64url(nonce + self._aead.encrypt(nonce, body, _CONTEXT))

    def open(self, value: str | None) -> Pending | None:
        if not value or len(value) > _MAX_COOKIE:
            return None
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            email, binding, expires = json.loads(self._aead.decrypt(raw[:12], raw[12:], _CONTEXT))
        except (ValueError, TypeError, binascii.Error, InvalidTag):
            return None
        if not isinstance(email, str) or not isinstance(binding, str) or not isinstance(expires, int) \
                or expires <= time.time():
            return None
        return Pending(email, binding)

    def of(self, request: Request) -> Pending | None:
        return self.open(request.cookies.get(self.cookie))

    def set(self, response: Response, pending: Pending) -> None:
        response.set_cookie(self.cookie, self.seal(pending), max_age=self.ttl, httponly=True, secure=self.secure,
                            samesite="lax", path=PATH)

    def clear(self, response: Response) -> None:
        response.delete_cookie(self.cookie, path=PATH)
