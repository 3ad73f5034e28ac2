"""Firebase Authentication's modified scrypt (https://github.com/firebase/scrypt).

Firebase derives a key with scrypt(password, salt + salt_separator, N=2^mem_cost, r=rounds, p=1,
32 bytes) and stores AES-256-CTR(key=derived, iv=0) of the project's *signer key*. The signer key,
separator, rounds and memory cost belong to the project (console: Authentication > Users >
"Password hash parameters"), so `users import --format firebase` writes them into each hash:

    $firebase-scrypt$r=<rounds>,m=<mem_cost>$<signer key>$<salt separator>$<salt>$<hash>

all four in standard base64 (the form Firebase shows and exports them in; padding optional)."""

from __future__ import annotations

import hashlib
import re
from typing import Any, ClassVar

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .common import MAX_SCRYPT_MEMORY, Malformed, ParsedScheme, b64decode, equal, pw

PREFIX = "$firebase-scrypt$"
B64 = r"[A-Za-z0-9+/]*={0,2}"
ENCODED = re.compile(rf"^\$firebase-scrypt\$r=(\d{{1,2}}),m=(\d{{1,2}})\$({B64})\$({B64})\$({B64})\$({B64})$")


def encode(signer_key: str, salt_separator: str, rounds: int, mem_cost: int, salt: str, password_hash: str) -> str:
    return f"{PREFIX}r={rounds},m={mem_cost}${signer_key}${salt_separator}${salt}${password_hash}"


class FirebaseScrypt(ParsedScheme):
    scheme: ClassVar[str] = "firebase_scrypt"

    def _parse(self, encoded: str) -> tuple[int, int, bytes, bytes, bytes, bytes] | None:
        m = ENCODED.match(encoded)
        if m is None:
            return None
        rounds, mem_cost = int(m.group(1)), int(m.group(2))
        if not (1 <= rounds <= 32 and 1 <= mem_cost <= 20) or 128 * rounds * 2 ** mem_cost > MAX_SCRYPT_MEMORY:
            return None
        try:
            key, separator, salt, digest = (b64decode(m.group(i)) for i in (3, 4, 5, 6))
        except Malformed:
            return None
        if not key or not digest or len(key) != len(digest):
            return None
        return rounds, mem_cost, key, separator, salt, digest

    def _matches(self, parsed: Any, password: str) -> bool:
        rounds, mem_cost, key, separator, salt, digest = parsed
        derived = hashlib.scrypt(pw(password), salt=salt + separator, n=2 ** mem_cost, r=rounds, p=1, dklen=32,
                                 maxmem=MAX_SCRYPT_MEMORY + 1024 * 1024)
        encryptor = Cipher(algorithms.AES(derived), modes.CTR(b"\0" * 16)).encryptor()
        return equal(encryptor.update(key) + encryptor.finalize(), digest)
