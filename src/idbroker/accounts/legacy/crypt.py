"""Unix crypt(3) strings: `$6$` SHA-512-crypt, `$5$` SHA-256-crypt, `$1$` MD5-crypt (glibc
/etc/shadow, many home-made databases), verified by libpass (`passlib.hash`), whose own
implementation does not depend on the platform's crypt(3)."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from .common import MAX_CRYPT_ROUNDS

ENCODED = re.compile(r"^\$(6|5|1)\$(?:rounds=(\d{1,9})\$)?[./A-Za-z0-9]{0,16}\$[./A-Za-z0-9]{22,86}$")


def handler(prefix: str) -> Any:
    """libpass's class for the `$prefix$` scheme, loaded with the first crypt string seen (a migration
    source or import that has them), not in every worker."""
    from passlib.hash import md5_crypt, sha256_crypt, sha512_crypt

    return {"6": sha512_crypt, "5": sha256_crypt, "1": md5_crypt}[prefix]


class UnixCrypt:
    scheme: ClassVar[str] = "crypt"

    def identifies(self, encoded: str) -> bool:
        m = ENCODED.match(encoded)
        if m is None or (m.group(2) and not 1000 <= int(m.group(2)) <= MAX_CRYPT_ROUNDS):
            return False
        return handler(m.group(1)).identify(encoded)

    def verify(self, encoded: str, password: str) -> bool:
        if not self.identifies(encoded):
            return False
        try:
            return bool(handler(encoded[1]).verify(password, encoded))  # passlib compares in constant time
        except (ValueError, TypeError):
            return False
