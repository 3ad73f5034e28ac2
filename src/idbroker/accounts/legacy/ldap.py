"""LDAP userPassword schemes (RFC 2307 style): `{SSHA}` (salted SHA-1), `{SSHA512}`, `{SHA}`
(unsalted SHA-1): base64 of digest (+ salt). Weak, which is why they are replaced at first sign-in."""

from __future__ import annotations

import hashlib
import re
from typing import Any, ClassVar

from .common import Malformed, ParsedScheme, b64decode, equal, pw

ENCODED = re.compile(r"^\{(SSHA|SSHA512|SHA)\}([A-Za-z0-9+/=]{20,})$", re.IGNORECASE)
DIGESTS = {"SSHA": ("sha1", 20, True), "SSHA512": ("sha512", 64, True), "SHA": ("sha1", 20, False)}


class LdapDigest(ParsedScheme):
    scheme: ClassVar[str] = "ldap"

    def _parse(self, encoded: str) -> tuple[str, bytes, bytes] | None:
        m = ENCODED.match(encoded)
        if m is None:
            return None
        name, size, salted = DIGESTS[m.group(1).upper()]
        try:
            raw = b64decode(m.group(2))
        except Malformed:
            return None
        if (salted and len(raw) <= size) or (not salted and len(raw) != size):
            return None
        return name, raw[:size], raw[size:]

    def _matches(self, parsed: Any, password: str) -> bool:
        name, digest, salt = parsed
        return equal(hashlib.new(name, pw(password) + salt).digest(), digest)
