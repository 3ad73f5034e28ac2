"""argon2id password hashing (argon2-cffi). Parameters come from settings; a hash made with
weaker parameters is replaced at the user's next successful login.

Hashes imported from other systems (bcrypt, PBKDF2, scrypt, crypt, LDAP schemes...) are verified
by a legacy hasher, one class per scheme in the `HASHERS` table (the migration work fills it),
and replaced by argon2id at the first successful sign-in. A hasher never hashes: it only
recognises its encoding and verifies against it, with the library that owns the scheme."""

from __future__ import annotations

import os
import threading
from typing import ClassVar, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from . import hash_memory


class Passwords:
    """At most `concurrency` hashes run at once in this process: more would not finish sooner on
    the cores there are, and each holds `memory_kib` of memory while it runs."""

    def __init__(self, memory_kib: int = 19 * 1024, time_cost: int = 2, parallelism: int = 1,
                 concurrency: int = 0):
        self._hasher = PasswordHasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism)
        self._slots = threading.BoundedSemaphore(concurrency or os.cpu_count() or 1)
        # Verified when the account does not exist, so both answers take the same time.
        self._dummy = self._hasher.hash("idbroker-timing-equaliser")

    def hash(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        encoded = stored or self._dummy
        # Our own encoding: with reused working memory (hash_memory.py); any other, argon2-cffi's way.
        matched = hash_memory.verify(encoded, password.encode("utf-8", "surrogatepass"), self._slots)
        if matched is not None:
            return matched and stored is not None
        try:
            with self._slots:
                return self._hasher.verify(encoded, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True


class LegacyHasher(Protocol):
    scheme: ClassVar[str]   # e.g. "bcrypt", "pbkdf2_sha256", "ssha"

    def identifies(self, encoded: str) -> bool:
        """The stored string is in this scheme's own encoding."""
        ...

    def verify(self, encoded: str, password: str) -> bool:
        """In constant time with respect to the password; False for a malformed encoding."""
        ...


# scheme -> the class verifying it. Filled by the migration work.
HASHERS: dict[str, type[LegacyHasher]] = {}
