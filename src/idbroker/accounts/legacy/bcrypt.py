"""bcrypt, `$2a$`, `$2b$`, `$2y$` (OpenBSD / PHP / most web frameworks, Auth0's bcrypt, Keycloak's
bcrypt provider). bcrypt's own checkpw compares in constant time."""

from __future__ import annotations

import re
from typing import ClassVar

import bcrypt as _bcrypt

ENCODED = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")


class Bcrypt:
    scheme: ClassVar[str] = "bcrypt"

    def identifies(self, encoded: str) -> bool:
        m = ENCODED.match(encoded)
        return m is not None and 4 <= int(m.group(1)) <= 20

    def verify(self, encoded: str, password: str) -> bool:
        if not self.identifies(encoded):
            return False
        # $2y$ (PHP) is the same algorithm as $2b$; bcrypt accepts both. bcrypt 5 refuses passwords
        # of more than 72 bytes where the legacy system truncated them: do as it did.
        secret = password.encode("utf-8", "surrogatepass")[:72]
        try:
            return _bcrypt.checkpw(secret, encoded.encode("ascii"))
        except ValueError:
            return False
