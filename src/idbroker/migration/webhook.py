"""A home-made user database behind an HTTPS endpoint of the operator's (kind ``webhook``).

The broker POSTs JSON to ``url``: ``{"action": "verify", "login": ..., "password": ...}`` for a
sign-in, ``{"action": "lookup", "login": ...}`` for a forgot-password. Every request carries
``Idbroker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` so that the
endpoint can refuse requests that are not ours or are replayed (it should refuse a ``t`` more than
five minutes away from its clock and compare in constant time).

The answer: 200 with a JSON object of claims - ``email`` (required, the address asked about),
``email_verified``, OIDC Core §5.1 profile claims, ``groups`` (a list of strings) and
``custom_attributes`` (an object); or 401 / 404 for an unknown login or a wrong password (one
answer). Anything else - another status, a redirect, a body that is not such an object, a
timeout, a refused connection - is `SourceUnavailable`. Redirects are not followed.

Options: ``url`` (https; http only for a loopback host), ``secret`` (stored encrypted),
``timeout`` (seconds, default 5). The password is sent in the body only, never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..security import is_loopback_host
from .legacy import LegacyUser, SourceConfig, SourceUnavailable, timeout

log = logging.getLogger("idbroker.migration")

SIGNATURE_HEADER = "Idbroker-Signature"
PROFILE_CLAIMS = ("name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "picture",
                  "website", "gender", "birthdate", "zoneinfo", "locale", "phone_number", "address")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value: ``t=<timestamp>,v1=<hex HMAC-SHA256 over "<timestamp>.<body>">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def legacy_user(data: Any, login: str) -> LegacyUser:
    """The claims of a source's answer as a `LegacyUser`; ValueError when they are not usable."""
    if not isinstance(data, Mapping):
        raise ValueError("the answer is not a JSON object")
    email = data.get("email")
    if not isinstance(email, str) or email.strip().lower() != login.strip().lower():
        raise ValueError("the answer's email is not the address asked about")
    groups = data.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ValueError("groups is not a list of strings")
    custom = data.get("custom_attributes") or {}
    if not isinstance(custom, Mapping):
        raise ValueError("custom_attributes is not an object")
    claims = {k: data[k] for k in PROFILE_CLAIMS if data.get(k) not in (None, "")}
    return LegacyUser(email=email.strip().lower(), email_verified=data.get("email_verified") is True,
                      claims=claims, groups=tuple(groups), custom_attributes=dict(custom))


class WebhookSource:
    kind: ClassVar[str] = "webhook"
    secret_options: ClassVar[tuple[str, ...]] = ("secret",)

    def __init__(self, config: SourceConfig):
        o = config.options
        self.source_id = config.id
        self.url = str(o.get("url") or "")
        parts = urlsplit(self.url)
        if not parts.hostname or parts.scheme not in ("https", "http"):
            raise ValueError("url must be an https URL")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("url: http:// is accepted only for a loopback host; use https")
        if not o.get("secret"):
            raise ValueError("secret is required")
        self._secret = str(o["secret"])
        self.timeout = timeout(o)

    def verify(self, login: str, password: str) -> LegacyUser | None:
        if not login or not password:
            return None
        return self._ask({"action": "verify", "login": login, "password": password}, login)

    def lookup(self, login: str) -> LegacyUser | None:
        if not login:
            return None
        return self._ask({"action": "lookup", "login": login}, login)

    def _ask(self, payload: dict[str, str], login: str) -> LegacyUser | None:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   SIGNATURE_HEADER: signature(self._secret, int(time.time()), body)}
        import httpx  # here: loaded with the first question to a webhook source

        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as http:
                response = http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self._unavailable(f"{type(exc).__name__}") from None
        if response.status_code in (401, 404):
            return None
        if response.status_code != 200:
            raise self._unavailable(f"status {response.status_code}")
        try:
            return legacy_user(response.json(), login)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise self._unavailable(f"unusable answer: {str(exc)[:200]}") from None

    def _unavailable(self, reason: str) -> SourceUnavailable:
        detail = f"webhook {self.source_id}: {reason}"
        log.warning("%s", detail)
        return SourceUnavailable(detail)
