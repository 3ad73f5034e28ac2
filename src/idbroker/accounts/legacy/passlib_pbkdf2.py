"""passlib's `$pbkdf2$` (SHA-1), `$pbkdf2-sha256$` and `$pbkdf2-sha512$`:
`$pbkdf2-<digest>$<iterations>$<salt>$<hash>`, salt and hash in passlib's adapted base64 ('.'
for '+', no padding). The hash length is read from the string, so Keycloak's 64-byte
pbkdf2-sha256 credentials (`transfer.py` writes them in this encoding) verify too."""

from __future__ import annotations

import re
from typing import ClassVar

from .common import MAX_PBKDF2_ITERATIONS, Malformed, Pbkdf2Scheme, ab64decode, bounded_int

ENCODED = re.compile(r"^\$pbkdf2(?:-(sha256|sha512))?\$(\d{1,9})\$([A-Za-z0-9./+]{0,128})\$([A-Za-z0-9./+]{16,})$")


class PasslibPbkdf2(Pbkdf2Scheme):
    scheme: ClassVar[str] = "passlib_pbkdf2"

    def _parse(self, encoded: str) -> tuple[str, int, bytes, bytes] | None:
        m = ENCODED.match(encoded)
        if m is None:
            return None
        try:
            return (m.group(1) or "sha1", bounded_int(m.group(2), 1, MAX_PBKDF2_ITERATIONS),
                    ab64decode(m.group(3)), ab64decode(m.group(4)))
        except Malformed:
            return None

