"""scrypt PHC strings `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>` (passlib's encoding: salt and
hash in passlib's adapted base64; standard base64 is read too), verified with hashlib.scrypt."""

from __future__ import annotations

import hashlib
import re
from typing import Any, ClassVar

from .common import MAX_SCRYPT_MEMORY, Malformed, ParsedScheme, ab64decode, equal, pw

ENCODED = re.compile(r"^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/.]{4,})\$([A-Za-z0-9+/.]{16,})$")


class Scrypt(ParsedScheme):
    scheme: ClassVar[str] = "scrypt"

    def _parse(self, encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
        m = ENCODED.match(encoded)
        if m is None:
            return None
        ln, r, p = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if not (1 <= ln <= 24 and 1 <= r <= 64 and 1 <= p <= 16) or 128 * r * (2 ** ln) > MAX_SCRYPT_MEMORY:
            return None
        try:
            return ln, r, p, ab64decode(m.group(4)), ab64decode(m.group(5))
        except Malformed:
            return None

    def _matches(self, parsed: Any, password: str) -> bool:
        ln, r, p, salt, digest = parsed
        derived = hashlib.scrypt(pw(password), salt=salt, n=2 ** ln, r=r, p=p, dklen=len(digest),
                                 maxmem=MAX_SCRYPT_MEMORY + 1024 * 1024)
        return equal(derived, digest)
