"""Small helpers shared by the legacy hashers: base64 variants, bounded parameters, constant-time compare."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from ...security import is_digits

MAX_PBKDF2_ITERATIONS = 10_000_000
MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024  # bytes: 128 * r * N
MAX_BCRYPT_ROUNDS = 20
MAX_CRYPT_ROUNDS = 10_000_000


class Malformed(ValueError):
    """The encoding is not what the scheme writes: the verification answers False."""


def b64decode(text: str, *, altchars: bytes | None = None) -> bytes:
    """Standard (or `altchars`) base64 with or without padding; Malformed otherwise."""
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded.encode("ascii"), altchars=altchars, validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise Malformed("bad base64") from exc


def ab64decode(text: str) -> bytes:
    """passlib's "adapted base64": '.' in place of '+', no padding."""
    return b64decode(text.replace(".", "+"))


def equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def pw(password: str) -> bytes:
    return password.encode("utf-8", "surrogatepass")


def bounded_int(text: str, low: int, high: int) -> int:
    if not is_digits(text) or len(text) > 12:
        raise Malformed("not a number")
    value = int(text)
    if not low <= value <= high:
        raise Malformed("parameter out of bounds")
    return value


class ParsedScheme:
    """A scheme whose encoding is parsed into its parameters (`_parse`: None for anything
    malformed or out of bounds) and checked by computing the digest again (`_matches`)."""

    def identifies(self, encoded: str) -> bool:
        return self._parse(encoded) is not None

    def verify(self, encoded: str, password: str) -> bool:
        parsed = self._parse(encoded)
        return parsed is not None and self._matches(parsed, password)

    def _parse(self, encoded: str) -> Any:
        raise NotImplementedError

    def _matches(self, parsed: Any, password: str) -> bool:
        raise NotImplementedError


class Pbkdf2Scheme(ParsedScheme):
    """PBKDF2-HMAC encodings, parsed into (digest name, iterations, salt, digest)."""

    def _matches(self, parsed: tuple[str, int, bytes, bytes], password: str) -> bool:
        digest_name, iterations, salt, digest = parsed
        return equal(hashlib.pbkdf2_hmac(digest_name, pw(password), salt, iterations, len(digest)), digest)
