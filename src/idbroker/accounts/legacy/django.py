"""Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>` and `pbkdf2_sha1$...` (the salt is
used as text, the hash is standard base64), verified with hashlib.pbkdf2_hmac."""

from __future__ import annotations

import re
from typing import ClassVar

from .common import MAX_PBKDF2_ITERATIONS, Malformed, Pbkdf2Scheme, b64decode, bounded_int

ENCODED = re.compile(r"^pbkdf2_(sha256|sha1)\$(\d{1,9})\$([^$]{1,128})\$([A-Za-z0-9+/=]{16,})$")


class DjangoPbkdf2(Pbkdf2Scheme):
    scheme: ClassVar[str] = "django_pbkdf2"

    def _parse(self, encoded: str) -> tuple[str, int, bytes, bytes] | None:
        m = ENCODED.match(encoded)
        if m is None:
            return None
        try:
            return (m.group(1), bounded_int(m.group(2), 1, MAX_PBKDF2_ITERATIONS), m.group(3).encode("utf-8"),
                    b64decode(m.group(4)))
        except Malformed:
            return None

