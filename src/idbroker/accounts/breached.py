"""Breached and common passwords (NIST SP 800-63B §5.1.1.2: refuse values known from breaches or
commonly used).

Offline, always (when `breached_passwords` is on): ``data/breached-passwords.bin`` ships with the
package - 202,125 entries from a public list of leaked and common passwords (source, licence and
format in ``data/README.md``; built by ``scripts/build-breached-list``). It holds sorted 8-byte
prefixes of SHA-1 digests, searched by bisection in a read-only memory map opened at the first
lookup: no start-up cost, no per-process copy of the list.

Online, optionally: with `breached_range_url` set, a k-anonymity range API that speaks the Pwned
Passwords protocol - ``GET {url}/{first 5 hex digits of the SHA-1}`` answers lines
``SUFFIX:COUNT`` (the other 35 hex digits; a count of 0 is padding). Only the 5-digit prefix leaves
the broker, never the password or its full hash. The request times out quickly; when the service
cannot be reached or answers nonsense, the offline list alone decides. Answers are cached a few
minutes per prefix (one check at sign-up runs twice: on the form and when the account is made).

The offline list is searched for the password as typed and for its lower-case form (``Password1``
is as weak as ``password1``); the range API for the password as typed.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import struct
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("idbroker.passwords")

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "breached-passwords.bin"
MAGIC = b"IDBPWL1\x00"
HEADER = struct.Struct(">8sII")  # magic, entry count, digest bytes


class BreachedList:
    """The shipped list: ``password in BreachedList()``."""

    def __init__(self, path: Path = DATA_FILE):
        self.path = path
        self._map: mmap.mmap | None = None
        self._count = 0
        self._size = 0
        self._lock = threading.Lock()

    def _open(self) -> mmap.mmap:
        if self._map is None:
            with self._lock:
                if self._map is None:
                    with self.path.open("rb") as f:
                        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                    magic, count, size = HEADER.unpack_from(mapped, 0)
                    if magic != MAGIC or size < 4 or len(mapped) != HEADER.size + count * size:
                        mapped.close()
                        raise ValueError(f"{self.path} is not a breached-password list")
                    self._count, self._size = count, size
                    self._map = mapped
        return self._map

    def __len__(self) -> int:
        self._open()
        return self._count

    def entry(self, index: int) -> bytes:
        """The `index`-th digest prefix in sorted order."""
        data = self._open()
        start = HEADER.size + index * self._size
        return data[start:start + self._size]

    def has_digest(self, sha1: bytes) -> bool:
        data = self._open()
        key, size = sha1[:self._size], self._size
        lo, hi = 0, self._count
        while lo < hi:
            mid = (lo + hi) // 2
            start = HEADER.size + mid * size
            if data[start:start + size] < key:
                lo = mid + 1
            else:
                hi = mid
        start = HEADER.size + lo * size
        return lo < self._count and data[start:start + size] == key

    def __contains__(self, password: object) -> bool:
        if not isinstance(password, str):
            return False
        return self.has_digest(hashlib.sha1(password.encode("utf-8", "surrogatepass")).digest())


class RangeChecker:
    """A Pwned Passwords-style range API. `count(password)`: how often the service saw it (0: not
    seen), or None when it could not tell."""

    def __init__(self, url: str, *, timeout: float = 2.0, cache_seconds: float = 300.0, cache_size: int = 1024,
                 transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, dict[str, int]]] = OrderedDict()
        self._lock = threading.Lock()
        import httpx  # only when a range API is configured: with rich installed httpx loads its CLI (~7 MB)

        self._client = httpx.Client(timeout=httpx.Timeout(timeout), transport=transport, follow_redirects=False,
                                    headers={"User-Agent": "idbroker", "Add-Padding": "true"})

    def _suffixes(self, prefix: str) -> dict[str, int] | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(prefix)
            if cached is not None and now - cached[0] < self.cache_seconds:
                self._cache.move_to_end(prefix)
                return cached[1]
        import httpx

        try:
            response = self._client.get(f"{self.url}/{prefix}")
            response.raise_for_status()
            counts: dict[str, int] = {}
            for line in response.text[:4_000_000].splitlines():
                suffix, sep, count = line.strip().partition(":")
                if not sep:
                    continue
                if len(suffix) != 35:
                    raise ValueError("not a range answer")
                counts[suffix.upper()] = int(count.strip() or "0")
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("breached-password range check unavailable (%s); the offline list decides",
                        type(exc).__name__)
            return None
        with self._lock:
            self._cache[prefix] = (now, counts)
            self._cache.move_to_end(prefix)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return counts

    def count(self, password: str) -> int | None:
        digest = hashlib.sha1(password.encode("utf-8", "surrogatepass")).hexdigest().upper()
        counts = self._suffixes(digest[:5])
        if counts is None:
            return None
        return counts.get(digest[5:], 0)

    def close(self) -> None:
        self._client.close()


class BreachedPasswords:
    """What the password policy asks: is this password known from breaches or common lists?"""

    def __init__(self, offline: BreachedList | None = None, online: RangeChecker | None = None):
        self.offline = offline if offline is not None else BreachedList()
        self.online = online

    def __call__(self, password: str) -> bool:
        candidates = dict.fromkeys((password, password.lower()))
        if any(candidate in self.offline for candidate in candidates):
            return True
        return self.online is not None and (self.online.count(password) or 0) > 0
