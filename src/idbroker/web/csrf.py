"""CSRF protection for every form: a random cookie and a form field that must be its HMAC."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

from ..security import constant_time_equals, random_token


class Csrf:
    def __init__(self, key: bytes, cookie_name: str, secure: bool):
        self.key = key
        self.cookie = cookie_name
        self.secure = secure

    def _mac(self, value: str) -> str:
        return hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()

    def token(self, request: Request) -> tuple[str, str | None]:
        """(form token, new cookie value or None when the browser already has one)."""
        current = request.cookies.get(self.cookie)
        if current and 16 <= len(current) <= 128:
            return self._mac(current), None
        fresh = random_token(24)
        return self._mac(fresh), fresh

    def set_cookie(self, response: Response, value: str | None) -> None:
        if value:
            response.set_cookie(self.cookie, value, httponly=True, secure=self.secure, samesite="lax", path="/")

    def valid(self, request: Request, submitted: str | None) -> bool:
        """Whether `submitted` (a form field or header: any text) is the MAC of the cookie."""
        current = request.cookies.get(self.cookie)
        if not current or not submitted:
            return False
        return constant_time_equals(self._mac(current), submitted)
