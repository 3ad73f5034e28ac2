"""What an issuer is given and gives back, and its errors (re-exported by credentials/base.py).
Apart from base.py so that an issuer can import them while base.py's `ISSUERS` imports the issuer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class CredentialRefused(Exception):
    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error = error              # e.g. invalid_target, invalid_scope, access_denied
        self.description = description


class CredentialUnavailable(Exception):
    """The service behind the issuer failed (STS down, throttled); `detail` is for the log."""


@dataclass(frozen=True)
class Subject:
    """The verified token the request presented."""

    sub: str
    client_id: str
    scopes: frozenset[str]
    claims: Mapping[str, Any]
    actor: Mapping[str, Any] | None = None   # RFC 8693 §4.1 `act`, for delegation


@dataclass(frozen=True)
class CredentialRequest:
    subject: Subject
    audience: tuple[str, ...] = ()
    scopes: frozenset[str] = frozenset()
    options: Mapping[str, str] = field(default_factory=dict)  # e.g. role_arn, duration_seconds


@dataclass(frozen=True)
class IssuedCredential:
    token_type: str            # RFC 8693 §2.2.1 issued_token_type
    body: Mapping[str, Any]    # the JSON the client receives
    expires_in: int
