"""A change counter for caches that must never outlive a revocation.

Every userinfo and introspection call asks whether its access token was revoked (by jti or
through its grant) and, for userinfo, loads the token's user. Workers cache those answers, and
a cached answer is only good while nothing it depends on has changed: the `grants`,
`revoked_tokens` and `users` tables. So every transaction that writes to them moves a counter
that all workers see, and a cached answer carries the counter value read *before* its query:
once the counter has moved, the answer is ignored.

How the counter is shared:

* SQLite (one machine): an 8-byte counter in a file beside the database, memory-mapped by every
  worker, incremented after the commit while the writer still holds the database's writer lock
  (store/db.py), so increments never race. Reading it costs a memory read.
* PostgreSQL (several machines): the writing transaction sends ``NOTIFY idbroker_changes``, which
  PostgreSQL delivers when, and only if, it commits. Each worker runs a thread that LISTENs and
  moves its own counter on every notification. Another worker sees a revocation once the
  notification arrives (well under a millisecond on one host, a network round trip across hosts);
  the worker that made the change sees it at once. While the listening connection is down,
  `generation()` is None and callers do not use their caches at all.

Which transactions count is decided from the ORM's own events (store/db.py): inserts, updates
and deletes of those tables, including bulk ``update()``/``delete()`` statements. A new grant or
a new user changes no earlier answer, so their inserts do not count.
"""

from __future__ import annotations

import itertools
import logging
import mmap
import os
import struct
import threading
from typing import Any

log = logging.getLogger("idbroker.store")

WATCHED_TABLES = frozenset({"grants", "revoked_tokens", "users"})
INSERTS_THAT_COUNT = frozenset({"revoked_tokens"})
CHANNEL = "idbroker_changes"
_COUNTER = struct.Struct("<Q")


class ChangeFeed:
    """The interface: `generation()` for readers, `notify(session)` inside the writing transaction
    and `bump()` after its commit."""

    def generation(self) -> int | None:
        raise NotImplementedError

    def notify(self, session: Any) -> None:
        """Inside the writing transaction, before its commit."""

    def bump(self) -> None:
        """After the commit of a transaction that changed a watched table."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop whatever the feed runs in the background."""


class LocalCounter(ChangeFeed):
    """One process only (an in-memory SQLite database). Each move takes a value never used
    before (`itertools.count` is atomic), so two threads moving it at once cannot land on the
    same value."""

    def __init__(self) -> None:
        self._next = itertools.count(1)
        self._value = 0

    def generation(self) -> int | None:
        return self._value

    def bump(self) -> None:
        self._value = next(self._next)


class FileCounter(ChangeFeed):
    """SQLite: the counter lives in `path`, mapped into every process that uses the database.
    Mapped lazily and again after a fork. `bump` runs under the database's writer lock."""

    def __init__(self, path: str):
        self.path = path
        self._map: mmap.mmap | None = None
        self._pid = 0

    def _mapped(self) -> mmap.mmap:
        if self._pid != os.getpid() or self._map is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                if os.fstat(fd).st_size < _COUNTER.size:
                    os.ftruncate(fd, _COUNTER.size)
                self._map = mmap.mmap(fd, _COUNTER.size)
            finally:
                os.close(fd)
            self._pid = os.getpid()
        return self._map

    def generation(self) -> int | None:
        return _COUNTER.unpack_from(self._mapped(), 0)[0]

    def bump(self) -> None:
        counter = self._mapped()
        _COUNTER.pack_into(counter, 0, _COUNTER.unpack_from(counter, 0)[0] + 1)


class PgNotifications(LocalCounter):
    """PostgreSQL: LISTEN on a connection of its own, in a daemon thread per process."""

    def __init__(self, conninfo: str, retry_seconds: float = 1.0):
        super().__init__()
        self.conninfo = conninfo
        self.retry_seconds = retry_seconds
        self._listening = False
        self._pid = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _ensure_listener(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._listening = False
            threading.Thread(target=self._listen, name="idbroker-changes", daemon=True).start()

    def _listen(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Anything committed while nobody listened is covered by this move.
                    self.bump()
                    self._listening = True
                    while not self._stop.is_set():
                        # A timeout, to look at the stop flag now and then.
                        for _ in conn.notifies(timeout=1.0):
                            self.bump()
            except Exception as exc:  # noqa: BLE001 - any failure: stop trusting caches, retry
                log.warning("change notifications interrupted (%s); caches off until reconnected",
                            type(exc).__name__)
            finally:
                self._listening = False
                self.bump()
            self._stop.wait(self.retry_seconds)

    def generation(self) -> int | None:
        self._ensure_listener()
        return self._value if self._listening else None

    def close(self) -> None:
        self._stop.set()

    def notify(self, session: Any) -> None:
        from sqlalchemy import text

        session.execute(text(f"NOTIFY {CHANNEL}"))


def feed_for(url: Any, sqlite_file: str | None) -> ChangeFeed:
    """The feed that suits the database at `url` (a SQLAlchemy URL)."""
    if url.get_backend_name() == "postgresql":
        return PgNotifications(url.set(drivername="postgresql").render_as_string(hide_password=False))
    if sqlite_file:
        return FileCounter(f"{sqlite_file}-changes")
    return LocalCounter()


def statement_counts(statement: Any) -> bool:
    """A bulk UPDATE or DELETE of a watched table."""
    table = getattr(statement, "table", None)
    return getattr(table, "name", None) in WATCHED_TABLES


def flush_counts(session: Any) -> bool:
    """Objects about to be flushed that change a watched table."""
    for obj in session.new:
        if obj.__table__.name in INSERTS_THAT_COUNT:
            return True
    return any(obj.__table__.name in WATCHED_TABLES for obj in (*session.dirty, *session.deleted))
