"""Small primitives shared by every module: random values, digests, keyed hashes, sub-keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

TOKEN_RE = re.compile(r"\A[A-Za-z0-9_-]{1,128}\Z")  # what random_token produces ($ would allow a final newline)


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random value with `nbytes` of entropy (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def nul_path(value: Any, path: str = "") -> str | None:
    """Where in `value` (a string, or JSON-like dicts and lists) the first NUL character is - in a
    key or a string - as a path (``a.b[2]``), or None. PostgreSQL text cannot hold NUL, so input
    bound for the store is refused at the door on both stores, never at the INSERT on one."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        here = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and "\x00" in key:
            return here
        found = nul_path(item, here)
        if found is not None:
            return found
    return None


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
        return constant_time_equals(self.hash(value), digest)


def constant_time_equals(a: str, b: str) -> bool:
    """Never raises: compares UTF-8 bytes (hmac.compare_digest refuses non-ASCII str), whatever the text."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


MAX_JSON_DEPTH = 32
# JSON strings (skipped whole), an unterminated string's opening quote, and brackets.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|["\[\]{}]')


def loads_bounded(data: str | bytes, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads for untrusted input, at most `max_bytes` (UTF-8) and `max_depth` nested arrays and
    objects; ValueError otherwise. Unbounded, json.loads recurses into RecursionError, and accepts
    lone surrogate escapes ("\\ud800") that no database or encoder takes (RFC 8259 §8.2)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise ValueError(f"JSON larger than {max_bytes} bytes")
    text = raw.decode("utf-8")
    depth = 0
    for token in _JSON_TOKENS.findall(text):
        if token in ("[", "{"):
            depth += 1
            if depth > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth}")
        elif token in ("]", "}"):
            depth -= 1
        elif token == '"':
            raise ValueError("unterminated JSON string")
    value = json.loads(text)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # UnicodeEncodeError (a ValueError) on lone surrogates
    return value


def is_digits(raw: str) -> bool:
    """Only the ASCII digits 0-9, at least one: what int() takes. str.isdigit() alone also takes
    "²" and "³", on which int() raises."""
    return raw.isascii() and raw.isdigit()


def is_loopback_host(host: str | None) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1, bracketed or not): where plain http
    and ldap are tolerated for development and tests, and nowhere else."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_problem(name: str, value: str) -> str | None:
    """Why `value` may not be a URL the broker calls out to, or None: https anywhere, http only on
    a loopback host; ldaps always, and ldap:// for its kind to judge (with StartTLS it is fine)."""
    parts = urlsplit(value)
    if parts.scheme in ("https", "ldaps", "ldap") and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname:
        if is_loopback_host(parts.hostname):
            return None
        return f"{name}: http:// is accepted only for a loopback host; use https"
    return f"{name}: {value!r} is not an absolute https URL"


class SecretBox:
    """Secret options at rest (an upstream's client secret, a source's bind password): one JWE
    (dir, A256GCM) of the name -> value map, under a key derived from the server key for `purpose`."""

    HEADER = {"alg": "dir", "enc": "A256GCM"}

    def __init__(self, master: bytes, purpose: str):
        self._key = OctKey.import_key(derive_key(master, purpose))

    def seal(self, values: Mapping[str, str]) -> str | None:
        return jwe.encrypt_compact(self.HEADER, json.dumps(dict(values)).encode(), self._key) if values else None

    def open(self, sealed: str | None) -> dict[str, str]:
        return json.loads(jwe.decrypt_compact(sealed, self._key).plaintext) if sealed else {}


class SealedState:
    """A short-lived value the browser carries for us (the state cookie of an upstream sign-in or
    a single logout): a JWE (dir, A256GCM) it can neither read nor change, with an expiry inside."""

    MAX_LENGTH = 8192

    def __init__(self, master: bytes, purpose: str, ttl: int):
        self._key = OctKey.import_key(derive_key(master, purpose))
        self.ttl = ttl

    def seal(self, value: Mapping[str, Any]) -> str:
        payload = {**value, "exp": int(time.time()) + self.ttl}
        return jwe.encrypt_compact(SecretBox.HEADER, json.dumps(payload).encode(), self._key)

    def open(self, token: str | None) -> dict[str, Any] | None:
        """The value, or None when absent, too long, tampered with, not ours or expired."""
        if not token or len(token) > self.MAX_LENGTH:
            return None
        try:
            value = json.loads(jwe.decrypt_compact(token, self._key).plaintext)
        except (JoseError, ValueError):
            return None
        if not isinstance(value, dict) or not isinstance(value.get("exp"), int) or value["exp"] < time.time():
            return None
        return value
