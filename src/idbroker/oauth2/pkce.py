"""RFC 7636 Proof Key for Code Exchange, S256 only (plain is refused: OAuth 2.0 Security BCP §2.1.1)."""

from __future__ import annotations

import hashlib
import re

from ..security import b64url, constant_time_equals
from .errors import InvalidGrantError, InvalidRequestError

# RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"
VERIFIER_RE = re.compile(r"\A[A-Za-z0-9\-._~]{43,128}\Z")
CHALLENGE_RE = re.compile(r"\A[A-Za-z0-9\-_]{43}\Z")  # base64url(SHA-256) without padding


def s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def check_challenge(challenge: str | None, method: str | None, *, required: bool) -> None:
    """At the authorization endpoint (RFC 7636 §4.4.1)."""
    if challenge is None:
        if method is not None:
            raise InvalidRequestError("code_challenge_method without code_challenge")
        if required:
            raise InvalidRequestError("code_challenge is required (PKCE, S256)")
        return
    if (method or "plain") != "S256":
        raise InvalidRequestError("code_challenge_method must be S256")
    if not CHALLENGE_RE.match(challenge):
        raise InvalidRequestError("code_challenge must be a base64url SHA-256 digest")


def check_verifier(challenge: str | None, verifier: str | None) -> None:
    """At the token endpoint (RFC 7636 §4.6)."""
    if challenge is None:
        if verifier is not None:
            raise InvalidGrantError("code_verifier given but the authorization request had no challenge")
        return
    if verifier is None:
        raise InvalidGrantError("code_verifier is required")
    if not VERIFIER_RE.match(verifier) or not constant_time_equals(s256(verifier), challenge):
        raise InvalidGrantError("code_verifier does not match the code_challenge")
