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

  A listening connection can also stop delivering without failing (a network partition, a peer
  that vanished without closing): nothing arrives, so nothing looks changed, and TCP would notice
  only after hours. So the feed proves itself: every HEARTBEAT_SECONDS the listener sends a
  notification on a channel of its own, numbered, from a pooled connection of the engine, and
  notes when it sent it. PostgreSQL delivers notifications to a listener in commit order, so when
  the heartbeat sent at time S comes back, every change committed before S has been delivered
  too. The counter is trusted only while the last heartbeat that came back was sent less than
  MAX_STALENESS seconds ago: a cached answer is never more than MAX_STALENESS (5) seconds behind
  a change made by another worker. Once the heartbeat is late `generation()` is None (no caching);
  when heartbeats come back the counter moves first, voiding whatever was cached before the
  silence. A listener that hears nothing for RECONNECT_AFTER seconds reconnects, and its
  connection uses TCP keepalives (KEEPALIVES) so that a dead peer is noticed within a minute.

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
import time
from typing import Any

log = logging.getLogger("idbroker.store")

WATCHED_TABLES = frozenset({"grants", "revoked_tokens", "users"})
INSERTS_THAT_COUNT = frozenset({"revoked_tokens"})
CHANNEL = "idbroker_changes"
HEARTBEAT_SECONDS = 1.0
MAX_STALENESS = 5.0  # seconds a worker may go on trusting its caches without hearing a heartbeat
RECONNECT_AFTER = 30.0  # seconds without a heartbeat after which the listener starts over
# libpq: probe an idle listening connection after 10 s, every 5 s, give up after 3 missed probes.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
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
    """PostgreSQL: LISTEN on a connection of its own, in a daemon thread per process, with the
    heartbeat that bounds how stale a silent feed can make the caches. `engine` sends the
    heartbeats (and gives the listener its address)."""

    def __init__(self, engine: Any, retry_seconds: float = 1.0):
        super().__init__()
        self.engine = engine
        self.conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.retry_seconds = retry_seconds
        self._listening = False
        self._fresh_until = 0.0  # monotonic time until which the last heartbeat back vouches for the feed
        self._sent: dict[str, float] = {}  # heartbeats sent and not back yet: number -> monotonic time sent
        self._beats = itertools.count(1)
        self._channel = ""
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
            self._fresh_until = 0.0
            self._channel = f"{CHANNEL}_{os.urandom(8).hex()}"
            threading.Thread(target=self._listen, name="idbroker-changes", daemon=True).start()

    def _listen(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10, **KEEPALIVES) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {self._channel}")
                    # Anything committed while nobody listened is covered by this move.
                    self.bump()
                    self._listening = True
                    heard = time.monotonic()
                    while not self._stop.is_set():
                        self._send_heartbeat()
                        # A timeout, to send the next heartbeat and look at the stop flag.
                        for notification in conn.notifies(timeout=HEARTBEAT_SECONDS):
                            if self._received(notification):
                                heard = time.monotonic()
                        if time.monotonic() - heard > RECONNECT_AFTER:
                            raise TimeoutError("no heartbeat came back")
            except Exception as exc:  # noqa: BLE001 - any failure: stop trusting caches, retry
                log.warning("change notifications interrupted (%s); caches off until reconnected",
                            type(exc).__name__)
            finally:
                self._listening = False
                self._fresh_until = 0.0
                self._sent.clear()
                self.bump()
            self._stop.wait(self.retry_seconds)

    def _send_heartbeat(self) -> None:
        from sqlalchemy import text

        number = str(next(self._beats))
        self._sent[number] = time.monotonic()  # before the send: it can only make the bound tighter
        try:
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_notify(:channel, :number)"), {"channel": self._channel, "number": number})
        except Exception as exc:  # noqa: BLE001 - the heartbeat stays missing, so caches go off
            self._sent.pop(number, None)
            log.warning("change-feed heartbeat not sent (%s)", type(exc).__name__)

    def _received(self, notification: Any) -> bool:
        """One delivery: a change moves the counter; this listener's own heartbeat renews its
        trust in the counter. True for a heartbeat."""
        if notification.channel != self._channel:
            self.bump()
            return False
        sent = self._sent.pop(notification.payload, None)
        if sent is None:
            return False
        if time.monotonic() >= self._fresh_until:  # silent until now: forget what was cached before
            self.bump()
        self._fresh_until = sent + MAX_STALENESS
        return True

    def generation(self) -> int | None:
        self._ensure_listener()
        return self._value if self._listening and time.monotonic() < self._fresh_until else None

    def close(self) -> None:
        self._stop.set()

    def notify(self, session: Any) -> None:
        from sqlalchemy import text

        session.execute(text(f"NOTIFY {CHANNEL}"))


def feed_for(engine: Any, sqlite_file: str | None) -> ChangeFeed:
    """The feed that suits the database of `engine`."""
    if engine.url.get_backend_name() == "postgresql":
        return PgNotifications(engine)
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
