"""argon2 PHC strings written by other systems: `$argon2i$`, `$argon2d$` and `$argon2id$` with
parameters other than ours (verified by argon2-cffi; idbroker's own argon2id is verified by
`Passwords` directly, and a foreign-parameter one is rehashed after sign-in)."""

from __future__ import annotations

import re
from typing import ClassVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ENCODED = re.compile(r"^\$argon2(id|i|d)\$(?:v=(\d+)\$)?m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})"
                     r"\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$")
MAX_MEMORY_KIB = 1024 * 1024
MAX_TIME = 100


class Argon2:
    scheme: ClassVar[str] = "argon2"

    def identifies(self, encoded: str) -> bool:
        m = ENCODED.match(encoded)
        return m is not None and 8 <= int(m.group(3)) <= MAX_MEMORY_KIB and 1 <= int(m.group(4)) <= MAX_TIME

    def verify(self, encoded: str, password: str) -> bool:
        if not self.identifies(encoded):
            return False
        try:
            return PasswordHasher().verify(encoded, password)  # argon2-cffi takes the type from the string
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
