"""argon2id password hashing (argon2-cffi). Parameters come from settings; a hash made with
weaker parameters is replaced at the user's next successful login.

Hashes imported from other systems (bcrypt, PBKDF2, scrypt, crypt, LDAP schemes...) are verified
by a legacy hasher, one class per scheme in the `HASHERS` table (modules in accounts/legacy/),
and replaced by argon2id at the first successful sign-in. A hasher never hashes: it only
recognises its encoding and verifies against it, with the library that owns the scheme."""

from __future__ import annotations

import base64
import os
import threading
from typing import ClassVar, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION

from . import hash_memory
from .legacy.argon2 import Argon2
from .legacy.bcrypt import Bcrypt
from .legacy.crypt import UnixCrypt
from .legacy.django import DjangoPbkdf2
from .legacy.firebase import FirebaseScrypt
from .legacy.ldap import LdapDigest
from .legacy.passlib_pbkdf2 import PasslibPbkdf2
from .legacy.scrypt import Scrypt

OWN_PREFIX = "$argon2id$"


def unmatchable(hasher: PasswordHasher) -> str:
    """An argon2id encoding with `hasher`'s parameters that no password matches: a random salt
    and random bytes where the hash goes. Verifying a password against it runs the whole argon2id
    computation with those parameters - the work depends on them, not on the values - so it takes
    a real verification's time; making it hashes nothing, which saves a worker's start-up one
    hash (~20-50 ms of its cold start)."""
    def b64(raw: bytes) -> str:  # the PHC string format: standard alphabet, no padding
        return base64.b64encode(raw).decode("ascii").rstrip("=")

    return (f"$argon2id$v={ARGON2_VERSION}$m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
            f"${b64(os.urandom(hasher.salt_len))}${b64(os.urandom(hasher.hash_len))}")


class Passwords:
    """At most `concurrency` hashes run at once in this process: more would not finish sooner on
    the cores there are, and each holds `memory_kib` of memory while it runs."""

    def __init__(self, memory_kib: int = 19 * 1024, time_cost: int = 2, parallelism: int = 1,
                 concurrency: int = 0):
        self._hasher = PasswordHasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism)
        self._slots = threading.BoundedSemaphore(concurrency or os.cpu_count() or 1)
        # Verified when the account does not exist, so both answers take the same time. Made here,
        # not at the first such sign-in, which would then take a hash longer than the others.
        self._dummy = unmatchable(self._hasher)

    def hash(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        if stored is not None and not stored.startswith(OWN_PREFIX):
            return self._verify_legacy(stored, password)
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

    def _verify_legacy(self, stored: str, password: str) -> bool:
        """A hash imported from another system, by the hasher that identifies it. An encoding no
        hasher knows fails closed (after the dummy argon2id, so it takes a sign-in's time)."""
        hasher = legacy_hasher(stored)
        if hasher is None:
            self.verify(None, password)
            return False
        with self._slots:
            try:
                return hasher.verify(stored, password)
            except (ValueError, TypeError, OverflowError, MemoryError):
                return False

    def needs_rehash(self, stored: str) -> bool:
        if not stored.startswith(OWN_PREFIX):
            return True
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


# scheme -> the class verifying it (accounts/legacy/, one module per family).
HASHERS: dict[str, type[LegacyHasher]] = {
    Argon2.scheme: Argon2,
    Bcrypt.scheme: Bcrypt,
    Scrypt.scheme: Scrypt,
    DjangoPbkdf2.scheme: DjangoPbkdf2,
    PasslibPbkdf2.scheme: PasslibPbkdf2,
    LdapDigest.scheme: LdapDigest,
    UnixCrypt.scheme: UnixCrypt,
    FirebaseScrypt.scheme: FirebaseScrypt,
}
_INSTANCES: dict[str, LegacyHasher] = {}


def legacy_hasher(encoded: str) -> LegacyHasher | None:
    """The hasher whose encoding `encoded` is, or None (then the hash is refused)."""
    for scheme, cls in HASHERS.items():
        hasher = _INSTANCES.get(scheme)
        if hasher is None:
            hasher = _INSTANCES[scheme] = cls()
        if hasher.identifies(encoded):
            return hasher
    return None


def recognised(encoded: str) -> bool:
    """idbroker's own argon2id or an encoding a legacy hasher verifies (checked when importing)."""
    return (encoded.startswith(OWN_PREFIX) and hash_memory.ENCODED.fullmatch(encoded) is not None) \
        or legacy_hasher(encoded) is not None
