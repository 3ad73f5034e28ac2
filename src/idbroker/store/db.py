"""Engine and transactions. SQLite runs in WAL mode; PostgreSQL through psycopg 3."""

from __future__ import annotations

import fcntl
import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from .changes import ChangeFeed, feed_for, flush_counts, statement_counts

CHANGED = "idbroker.changed"  # Session.info flag: this transaction moves the change feed
# Every engine: errors never carry their statement's parameters (token hashes, grant ids, whatever a
# client sent), so logging an error cannot leak them.
HIDE_PARAMETERS = True
# SQLite: the WAL size (pages) at which a committing writer copies the WAL into the database file
# itself, while it still holds the writer lock. Serving workers checkpoint in the background
# (`Database.checkpoint`, every CHECKPOINT_INTERVAL seconds) long before that; this is the safety net
# for when they cannot keep up, and what a CLI command that writes much (an import) relies on.
WAL_AUTOCHECKPOINT = 10_000
# Seconds between background checkpoints (after any commit). Each one syncs the WAL and the database
# file and copies the newest version of every page written since: more often copies the same hot
# pages (indexes, the tables' last leaves) again and syncs again for nothing. 0.1 -> 1 s, worker CPU
# per password login on a quiet machine (alternating runs): -3 to -12 % with one user (3 pairs),
# 0 and -7 % with 32 (2 pairs); per refresh within the run-to-run spread (3 pairs).
# With synchronous=NORMAL the WAL reaches the disk at a checkpoint, so this is also how much of
# the last commits a power loss (not a crash of the broker) may undo: about a second.
CHECKPOINT_INTERVAL = 1.0
MAX_SAMPLES_KEPT = 10_000  # nobody drains them outside a server


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def sqlite_path(url: str) -> str | None:
    """The database file of a SQLite URL, or None when it is not a file (in memory) or not SQLite."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return path if path and path != ":memory:" else None


@cache
def upsert_insert(dialect: str) -> Callable[..., Any]:
    """`insert` of ``sqlalchemy.dialects.<dialect>`` (it has ON CONFLICT), imported when first
    asked for: a broker on SQLite never loads the PostgreSQL dialect (~2 MB a process)."""
    return importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert


class Samples:
    """Measurements one thread takes and another hands over (for /metrics): kept until `drain`,
    at most MAX_SAMPLES_KEPT of them."""

    def __init__(self) -> None:
        self._kept: list[Any] = []

    def add(self, sample: Any) -> None:
        if len(self._kept) < MAX_SAMPLES_KEPT:
            self._kept.append(sample)

    def drain(self) -> list[Any]:
        """What was added since the last call."""
        kept, self._kept = self._kept, []
        return kept


class WriterLock:
    """One SQLite writer at a time, across the threads of a process and across processes.

    SQLite lets only one transaction write at once; the others wait in its busy handler, which
    polls with sleeps growing to 100 ms, so a waiting writer often sleeps long after the lock is
    free and the server idles under write load. Here writers queue instead on a thread lock and
    an flock(2) on a file beside the database, and each one is woken the moment the previous one
    commits. The file is opened once per process (after a fork, again), because flock locks belong
    to an open file and a forked child would otherwise share its parent's."""

    def __init__(self, db_path: str | None, timeout: float = 30.0):
        self._threads = threading.Lock()
        self._file = f"{db_path}-writer.lock" if db_path else None
        self._timeout = timeout
        self._fd: int | None = None
        self._pid = 0
        self._waits = Samples()  # seconds each writer waited for its turn

    def drain_waits(self) -> list[float]:
        """How long each writer since the last call waited for its turn (for /metrics: a writer
        queued behind another's long transaction is a cause of tail latency)."""
        return self._waits.drain()

    def _fd_for_this_process(self) -> int:
        if self._pid != os.getpid():
            self._fd = os.open(self._file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # type: ignore[arg-type]
            self._pid = os.getpid()
        return self._fd  # type: ignore[return-value]

    @contextmanager
    def held(self) -> Iterator[None]:
        asked = time.perf_counter()
        if not self._threads.acquire(timeout=self._timeout):
            raise TimeoutError("timed out waiting for the database's write lock")
        try:
            if self._file is None:
                yield
                return
            fd = self._fd_for_this_process()
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._waits.add(time.perf_counter() - asked)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A connection per server thread (the ASGI thread pool has 40), kept open: opening one
        # costs the PRAGMAs below every time. Handed out last-returned-first: each connection has
        # a page cache of its own (up to 2 MB), and taken in turn all 48 of them fill theirs, where
        # a few suffice for what runs at once (refresh load, ./bench/run: a worker grew by 11-14 MB
        # instead of 3-5 MB).
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=48, max_overflow=16, pool_use_lifo=True, hide_parameters=HIDE_PARAMETERS)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Manage transactions ourselves so BEGIN IMMEDIATE can take the write lock up front.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # A writer takes SQLite's lock at BEGIN, once its turn on the WriterLock has come (the
            # busy timeout only backs that up, e.g. against another program writing the file), so
            # no writer fails with "database is locked" when it upgrades a read lock.
            # Readers issue no BEGIN: in autocommit mode each SELECT sees a consistent snapshot
            # on its own, and the hot read paths are single statements.
            if conn.get_execution_options().get("write", False):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pool_pre_ping: it costs a round trip on every checkout. A connection that died with the
    # server fails once; SQLAlchemy then invalidates the whole pool, and pool_recycle bounds age.
    # 20 + 8 per worker, and the one-time writers' 2 (make_batch_engine), keeps a few workers well
    # inside PostgreSQL's default 100 connections.
    return create_engine(url, pool_size=20, max_overflow=8, pool_recycle=300, hide_parameters=HIDE_PARAMETERS)


def make_batch_engine(url: str) -> Engine:
    """PostgreSQL: the connections of the one-time writers' batches (oauth2/one_time_writer.py), on which
    PostgreSQL plans no sequential scan (``enable_seqscan=off``). Their statements find rows by primary
    key - the presented refresh tokens or codes, their grants and users - in tables that grow by a row
    per refresh or login. psycopg prepares a statement at its sixth execution and PostgreSQL then keeps
    a generic plan for the life of the connection (up to pool_recycle) or until the table is analyzed
    again: made while the table was small (a fresh store, the first minutes), that plan was a
    sequential scan, whose cost grows with every row. Refresh on a fresh store, ./bench/run, PostgreSQL
    CPU a refresh: 0.20-0.42 ms with that plan, 0.12 ms planning every execution instead
    (``plan_cache_mode=force_custom_plan``), 0.08 ms with the index scans planned once. Only these
    connections: planning every statement everywhere cost a password login ~0.6 ms more of PostgreSQL
    CPU than it saved, and other statements may need a sequential scan. One connection per writer
    (two: each carries out one batch at a time)."""
    return create_engine(url, pool_size=2, max_overflow=0, pool_recycle=300, hide_parameters=HIDE_PARAMETERS,
                         connect_args={"options": "-c enable_seqscan=off"})


class Database:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.batch_engine = self.engine if url.startswith("sqlite") else make_batch_engine(url)
        self._readers = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(write=True)
        self._writers = sessionmaker(self._write_engine, expire_on_commit=False)
        self.writer_lock = WriterLock(sqlite_path(url)) if url.startswith("sqlite") else None
        self._wal = f"{sqlite_path(url)}-wal" if sqlite_path(url) else None
        self._wal_seen: tuple[int, int] | None = None
        # For single-statement reads on the hot paths (`with db.reads.connect() as conn`): on
        # PostgreSQL without the BEGIN and ROLLBACK round trips around the statement (SQLite
        # connections issue no BEGIN for reads anyway).
        self.reads = self.engine if self.writer_lock else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.changes: ChangeFeed = feed_for(self.engine, sqlite_path(url))
        for maker in (self._readers, self._writers):
            event.listen(maker, "after_flush", _note_flush)
            event.listen(maker, "do_orm_execute", _note_statement)

    @contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error. On SQLite a writing
        transaction first waits for its turn on the writer lock. A transaction that changed
        grants, revoked tokens or users moves the change feed (store/changes.py): PostgreSQL is
        told inside the transaction, the counter moves after the commit and, on SQLite, before
        the writer lock is released."""
        maker = self._writers if write else self._readers
        with self._turn(write), maker() as session:
            with session.begin():
                yield session
                session.flush()
                if session.info.get(CHANGED):
                    self.changes.notify(session)
            if session.info.pop(CHANGED, False):
                self.changes.bump()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One writing transaction on a plain connection, for Core statements that change no table
        the change feed watches (store/changes.py: it is not told): committed on success, rolled
        back on any error, after the writer lock's turn on SQLite as in `session`. Without the ORM
        session's bookkeeping - the one-time writer's batches run here on SQLite."""
        with self._turn(), self._write_engine.begin() as conn:
            yield conn

    def _turn(self, write: bool = True) -> AbstractContextManager[None]:
        """A writer's turn on SQLite's writer lock; nothing to wait for on PostgreSQL or for a reader."""
        return self.writer_lock.held() if write and self.writer_lock else nullcontext()

    @property
    def has_wal(self) -> bool:
        """A SQLite file: its WAL wants checkpoints (`checkpoint`)."""
        return self._wal is not None

    def _wal_stat(self) -> tuple[int, int] | None:
        if self._wal is None:
            return None
        try:
            stat = os.stat(self._wal)
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def wal_changed(self) -> bool:
        """A commit since the last `checkpoint` (one stat(2) of the WAL file, no query)."""
        return self._wal_stat() not in (None, self._wal_seen)

    def checkpoint(self) -> tuple[int, int] | None:
        """SQLite: copy what the WAL holds into the database file, so that the WAL can restart from
        its beginning. PASSIVE: it waits for no reader or writer and takes no writer lock, so
        writers go on meanwhile. Left to SQLite's automatic checkpoint, the writer whose commit
        crossed the threshold did this (a ~4 MB copy and two fsyncs, ~8 ms here) while every
        other writer of every process queued behind it. Answers (pages in the WAL, pages copied);
        None when there was nothing to do: PostgreSQL, an in-memory database, no WAL yet, or
        another process checkpointing at that moment."""
        seen = self._wal_stat()
        if seen is None:
            return None
        with self.engine.connect() as conn:
            busy, log, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        if busy:
            return None
        self._wal_seen = seen
        return log, copied

    @contextmanager
    def using(self, session: Session | None) -> Iterator[Session]:
        """`session` when the caller already has a transaction to join, else a new one."""
        if session is not None:
            yield session
        else:
            with self.session() as s:
                yield s

    def dispose(self) -> None:
        self.changes.close()
        self.engine.dispose()
        if self.batch_engine is not self.engine:
            self.batch_engine.dispose()


def _note_flush(session: Session, _context: object) -> None:
    if not session.info.get(CHANGED) and flush_counts(session):
        session.info[CHANGED] = True


def _note_statement(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and statement_counts(state.statement):
        state.session.info[CHANGED] = True
