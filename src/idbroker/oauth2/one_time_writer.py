"""Group commit of one-time credentials: refresh-token rotations and authorization-code redemptions.

Both read the presented credential (with its grant and user), decide, and write: the credential is
marked used - only if it still is unused, so that of two concurrent presentations exactly one wins
- and a new refresh token may be inserted, and its grant bound to a DPoP key. On SQLite every
writer waits for the one before it to commit; on PostgreSQL every statement is a round trip and
every commit waits for the WAL to reach the disk. Under load the time would go into those queues,
not into the rows.

Here the presentations of one kind in a process are carried out by one thread, in batches of
whatever presentations are waiting. Nothing waits on purpose: with one presentation waiting, the
batch is that one. A batch is

- on SQLite, one transaction of three statements - one SELECT of all the presented credentials,
  one ``UPDATE ... WHERE <hash> IN (...) AND used_at IS NULL RETURNING <hash>``, one multi-row
  ``INSERT`` of refresh tokens - begun once the writer lock is this thread's, so that the
  presentations that arrived during the wait join in;
- on PostgreSQL, two statements, each a transaction of its own: the SELECT, then the UPDATE and
  the INSERT as one statement (`_Statements.use_and_insert`). A transaction around the three would
  cost five round trips, BEGIN and COMMIT besides, and this thread waits for the GIL again after
  each. The SELECT needs no transaction around it: the UPDATE marks only credentials still unused,
  so a credential used since the read is a reuse all the same, as at READ COMMITTED inside one.
  Both run as driver SQL, text built once per (padded) batch size, on the psycopg connection itself:
  through SQLAlchemy each cost 0.1-0.25 ms of this thread's CPU more, most of it building the
  description of the SELECT's 49 columns.

A request waits (without holding a thread, from the event loop) until its batch has committed, so
what it was given is durable before its response is sent. Within a batch the first presentation
of a credential wins and any other is a reuse, as between batches. Each presentation's own
decision (`decide`: the request's checks, the refresh token to insert) runs in the batch; what it
raises fails that presentation alone.

The hashes of a batch go into the IN lists padded to the next power of two (`padded`), on both stores:
each text a connection runs is a prepared statement it keeps (SQLite: Python's sqlite3 keeps the last
128 of each connection; the SELECT of 49 columns is ~31 KB prepared), and with a text per batch size
a busy worker kept ~40 sizes of each statement on each of its connections: 4.3-4.7 MB of its 5-7 MB
of SQLite memory after `./bench/run`'s load.

Each batch's duration - from its start (on SQLite: asking for its turn on the writer lock) to its
commit - is kept for ``/metrics`` (`drain_batches`): every request of a batch
waits that long, so it is where a token request's tail comes from when it is not the event loop.
"""

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError

from ..store.db import Database, Samples, utcnow
from ..store.models import AuthorizationCode, Grant, RefreshToken, User
from ..store.rows import Row, layout_of, split

log = logging.getLogger("idbroker.oauth2")

MAX_BATCH = 256
# Driver SQL texts kept per statement, one per padded batch size (PostgreSQL; the read has 9, 1 to 256,
# the write one per padded size and number of successors). A batch of 256 makes a text of ~47 KB.
MAX_TEXTS = 256

_INSERT_REFRESH = insert(RefreshToken.__table__)
# A successor's one key that is no column of its row: the DPoP key (RFC 7638 thumbprint) its grant's
# refresh tokens are to be bound to from now on (RFC 9449 §5, grants.dpop_jkt), written in the same
# write as the successor, so that a redemption that committed needs nothing more from the store.
BIND_DPOP_KEY = "bind_dpop_jkt"
_GRANTS = Grant.__table__
_BIND = update(_GRANTS).where(_GRANTS.c.id == bindparam("gid")).values(dpop_jkt=bindparam("jkt"))
# What a successor's row gives in the one-statement write (PostgreSQL): a new token is unused.
_SUCCESSOR_COLUMNS = [c for c in RefreshToken.__table__.columns if c.name != "used_at"]

# decide(found) -> (use: mark the credential used, refresh token row to insert or None - with
# BIND_DPOP_KEY, its grant is bound to that key in the same write - the answer to give), where
# `found` is (credential, grant, user) or None for an unknown credential. A presentation that
# wanted to use a credential someone else used first gets REUSED instead.
Decision = tuple[bool, dict[str, Any] | None, Any]
REUSED = object()


class _Statements:
    def __init__(self, table: Any, key: str, kind: str):
        column = table.c[key]
        self.key = key
        self.kind = kind  # what the batches use up, for /metrics
        self.read = (select(table, Grant.__table__, User.__table__)
                     .join(Grant.__table__, Grant.__table__.c.id == table.c.grant_id)
                     .join(User.__table__, User.__table__.c.id == Grant.__table__.c.user_id)
                     .where(column.in_(bindparam("presented", expanding=True))))
        self.layout = layout_of(table, Grant.__table__, User.__table__)
        self.use = (update(table).where(column.in_(bindparam("presented", expanding=True)), table.c.used_at.is_(None))
                    .values(used_at=bindparam("now")).returning(column))
        # Those of the presented credentials that `use` marked at `now` (a write whose answer was lost).
        self.marked = select(column).where(column.in_(bindparam("presented", expanding=True)),
                                           table.c.used_at == bindparam("now"))
        self._texts: dict[tuple[Any, ...], str] = {}

    def read_text(self, dialect: Any, presented: int) -> str:
        """`read` as driver SQL for `presented` hashes, its parameters positional (PostgreSQL)."""
        key = ("read", dialect.name, presented)
        text = self._texts.get(key)
        if text is None:
            text = self._keep(key, _positional(self.read, dialect, presented))
        return text

    def use_and_insert(self, dialect: Any, used: int, inserted: int, bound: int = 0) -> str:
        """PostgreSQL: one statement that marks `used` presented credentials used (`use`: those still
        unused), inserts the successor of each one it marked and binds the grants of `bound` of those
        to a DPoP key (`BIND_DPOP_KEY`), answering the hashes it marked, as `use` does: ``WITH used AS
        (<use>), inserted AS (INSERT INTO refresh_tokens SELECT ... FROM (VALUES ...) JOIN used ...),
        bound AS (UPDATE grants ... FROM (VALUES ...) JOIN used ...) SELECT <hash> FROM used`` -
        data-modifying CTEs run as one atomic statement. Its parameters: `use`'s (the time, the `used`
        hashes), then per successor its predecessor's hash and its row (`successor_values`), then per
        binding its predecessor's hash, grant and key (`bindings`). One text per (used, inserted,
        bound), so that psycopg prepares it (SQLAlchemy's VALUES would be compiled anew on every
        batch). The VALUES are cast to their columns' types: a parameter alone has none there."""
        key = ("use", dialect.name, used, inserted, bound)
        text = self._texts.get(key)
        if text is None:
            names = [c.name for c in _SUCCESSOR_COLUMNS]
            row = _typed_row(dialect, _SUCCESSOR_COLUMNS)
            binding = _typed_row(dialect, (_GRANTS.c.id, _GRANTS.c.dpop_jkt))
            text = self._keep(key, (
                f"WITH used AS ({_positional(self.use, dialect, used, ('now',))})"
                + (f", inserted AS (INSERT INTO {RefreshToken.__tablename__} ({', '.join(names)}) "
                   f"SELECT {', '.join('s.' + n for n in names)} FROM (VALUES {', '.join([row] * inserted)}) "
                   f"AS s (predecessor, {', '.join(names)}) JOIN used ON used.{self.key} = s.predecessor)"
                   if inserted else "")
                + (f", bound AS (UPDATE {_GRANTS.name} SET dpop_jkt = b.jkt "
                   f"FROM (VALUES {', '.join([binding] * bound)}) AS b (predecessor, id, jkt) "
                   f"JOIN used ON used.{self.key} = b.predecessor WHERE {_GRANTS.name}.id = b.id)" if bound else "")
                + f" SELECT {self.key} FROM used"))
        return text

    def _keep(self, key: tuple[Any, ...], text: str) -> str:
        if len(self._texts) < MAX_TEXTS:
            self._texts[key] = text
        return text


def _positional(statement: Any, dialect: Any, presented: int, before: tuple[str, ...] = ()) -> str:
    """`statement` compiled for `dialect` with `presented` hashes in its IN list, its parameters
    positional (``%s``): those named in `before`, then the hashes, as they stand in the text."""
    state = statement.compile(dialect=dialect).construct_expanded_state(
        {"presented": [""] * presented, **dict.fromkeys(before)})
    if re.findall(r"%\((\w+)\)s", state.statement) != [*before, *(f"presented_{i + 1}" for i in range(presented))]:
        raise ValueError(f"unexpected parameters in {state.statement!r}")
    return re.sub(r"%\(\w+\)s", "%s", state.statement)


def _typed_row(dialect: Any, columns: Iterable[Any]) -> str:
    """A VALUES row of `use_and_insert`: an untyped predecessor hash, then one parameter per column,
    cast to the column's type."""
    return f"(%s, {', '.join(f'CAST(%s AS {c.type.compile(dialect=dialect)})' for c in columns)})"


def padded(presented: list[str]) -> list[str]:
    """`presented` lengthened to the next power of two by repeating its last hash, so that batches of
    1 to 256 credentials make 9 texts of a statement instead of 256 (the module's notes). A hash twice
    in an IN list changes nothing: the SELECT finds its row once, the UPDATE marks it and returns it
    once."""
    return presented + presented[-1:] * ((1 << (len(presented) - 1).bit_length()) - len(presented))


def successor_values(successors: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """The parameters of `_Statements.use_and_insert`'s VALUES: each successor's predecessor and row."""
    return [value for presented, row in successors for value in (presented, *(row[c.name] for c in _SUCCESSOR_COLUMNS))]


def bindings(successors: Iterable[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """(predecessor, grant, DPoP key) of each successor that asks for its grant to be bound (`BIND_DPOP_KEY`)."""
    return [(presented, row["grant_id"], row[BIND_DPOP_KEY]) for presented, row in successors if row.get(BIND_DPOP_KEY)]


REFRESH_TOKENS = _Statements(RefreshToken.__table__, "token_hash", "refresh_token")
AUTHORIZATION_CODES = _Statements(AuthorizationCode.__table__, "code_hash", "authorization_code")


@dataclass
class _Presentation:
    presented: str                 # hash of the credential presented
    decide: Callable[[tuple[Row, Row, Row] | None], Decision]
    done: Future = field(default_factory=Future)


class OneTimeWriter:
    def __init__(self, db: Database, statements: _Statements, now: Callable[[], datetime] = utcnow):
        self.db = db
        self.statements = statements
        self.now = now
        self._waiting: list[_Presentation] = []
        self._cond = threading.Condition()
        self._pid = 0
        self._durations = Samples()  # seconds each batch took
        self._driver_sql = db.engine.dialect.name == "postgresql"

    def present(self, presented: str, decide: Callable[[tuple[Row, Row, Row] | None], Decision]) -> Any:
        """Reads the credential whose hash is `presented`, asks `decide`, and writes what it
        decided - unless it wanted to use a credential that was used meanwhile: then nothing is
        written for it and the answer is REUSED. Blocks until the batch has committed; raises what
        `decide` or the batch's transaction raised."""
        return self._queue(presented, decide).result()

    async def present_async(self, presented: str, decide: Callable[[tuple[Row, Row, Row] | None], Decision]) -> Any:
        """`present` for the event loop: waits for the commit without holding a thread."""
        return await asyncio.wrap_future(self._queue(presented, decide))

    def _queue(self, presented: str, decide: Callable[[tuple[Row, Row, Row] | None], Decision]) -> Future:
        item = _Presentation(presented, decide)
        with self._cond:
            self._ensure_thread()
            self._waiting.append(item)
            self._cond.notify()
        return item.done

    def drain_batches(self) -> list[float]:
        """How long each batch since the last call took, from its start to its commit."""
        return self._durations.drain()

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():  # first use, or first use after a fork
            self._pid = os.getpid()
            self._waiting = []
            threading.Thread(target=self._run, name="idbroker-one-time", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
            batch: list[_Presentation] = []
            try:
                answers = self._write(batch, self._take)
            except BaseException as exc:  # noqa: BLE001 - every waiting request gets the failure
                for item in batch or self._take():
                    if not item.done.done():
                        item.done.set_exception(exc)
            else:
                for item, answer in answers:
                    item.done.set_result(answer)

    def _take(self) -> list[_Presentation]:
        with self._cond:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
        return batch

    def _write(self, batch: list[_Presentation], take: Callable[[], list[_Presentation]] = list
               ) -> list[tuple[_Presentation, Any]]:
        """Carries out `batch`, to which `take()` adds the presentations waiting by then (on SQLite
        once the writer lock is ours), and returns the answers of the presentations whose `decide`
        did not raise (those that did have their exception set already)."""
        asked = time.perf_counter()
        if self._driver_sql:
            batch += take()
            answers = self._on_postgresql(batch)
        else:
            answers = self._on_sqlite(batch, take)
        self._durations.add(time.perf_counter() - asked)
        return answers

    def _on_sqlite(self, batch: list[_Presentation], take: Callable[[], list[_Presentation]]
                   ) -> list[tuple[_Presentation, Any]]:
        """One transaction: the SELECT, the UPDATE, then the INSERT of the successors of the
        credentials it marked."""
        st = self.statements
        with self.db.transaction() as conn:
            batch += take()

            def use_and_insert(first: dict[str, dict[str, Any] | None], used: list[str]) -> set[str]:
                unused = set(conn.execute(st.use, {"presented": used, "now": self.now()}).scalars())
                successors = [(presented, row) for presented, row in first.items()
                              if row is not None and presented in unused]
                if successors:  # a row's BIND_DPOP_KEY names no column: the INSERT leaves it out
                    conn.execute(_INSERT_REFRESH, [row for _, row in successors])
                if bound := bindings(successors):
                    conn.execute(_BIND, [{"gid": grant, "jkt": jkt} for _, grant, jkt in bound])
                return unused

            return self._carry_out(batch, lambda presented: conn.execute(st.read, {"presented": presented}),
                                   use_and_insert)

    def _on_postgresql(self, batch: list[_Presentation]) -> list[tuple[_Presentation, Any]]:
        """The SELECT, then the UPDATE and INSERT as one statement, each committing on its own, on
        a psycopg connection of the batches' own pool (`Database.batch_engine`: index scans)."""
        st, dialect = self.statements, self.db.engine.dialect
        pooled = self.db.batch_engine.raw_connection()
        conn = pooled.driver_connection
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                def read(presented: list[str]) -> list[Any]:
                    return cur.execute(st.read_text(dialect, len(presented)), presented).fetchall()

                def use_and_insert(first: dict[str, dict[str, Any] | None], used: list[str]) -> set[str]:
                    successors = [(presented, row) for presented, row in first.items() if row is not None]
                    bound = bindings(successors)
                    text = st.use_and_insert(dialect, len(used), len(successors), len(bound))
                    now = self.now()
                    try:
                        cur.execute(text, (now, *used, *successor_values(successors), *(v for b in bound for v in b)))
                    except dialect.loaded_dbapi.Error as exc:
                        if not self._lost(pooled, exc):
                            raise
                        return self._marked_meanwhile(used, now, exc)
                    return {hashed for hashed, in cur.fetchall()}

                return self._carry_out(batch, read, use_and_insert)
        except dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would raise it (a lost server: 503)
            lost = self._lost(pooled, exc)
            raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True,
                                      connection_invalidated=lost, dialect=dialect) from exc
        finally:
            if not conn.closed:  # back into the pool as SQLAlchemy hands its connections out
                conn.autocommit = False
            pooled.close()

    def _lost(self, pooled: Any, exc: Exception) -> bool:
        """Whether `exc` lost the server. If so `pooled` and the pool's other connections, made before,
        are discarded (as SQLAlchemy does on a disconnect): a server that restarted, or whose
        connections were terminated, took them all, and each would fail a batch in turn. A connection
        it invalidated already (the write's, whose failure came back through the batch) is lost."""
        if pooled.dbapi_connection is None:
            return True
        conn = pooled.driver_connection
        if not (conn.broken or self.db.engine.dialect.is_disconnect(exc, conn, None)):
            return False
        pooled.invalidate(exc)
        self.db.batch_engine.dispose()
        return True

    def _marked_meanwhile(self, used: list[str], now: datetime, exc: Exception) -> set[str]:
        """The write's answer was lost with its connection (`exc`), maybe after it committed: the
        server commits an autocommitted statement before it answers, and may be stopped (a restart,
        pg_terminate_backend) in between. Answering the batch with a failure then would be wrong for
        good: the clients would present their credentials again, and the second presentation of a
        credential that was used is a reuse, which revokes the grant (a refresh token's whole chain).
        So the credentials it marked - used at its `now` - are asked for on a new connection: the
        statement is atomic, so if it marked any it committed, and the write answers those. If it
        marked none, it did not commit (or found every credential used by others since the read: a
        retry will say so), and the batch fails with `exc`, as it does when the asking fails too."""
        try:
            with self.db.batch_engine.connect() as conn:
                marked = set(conn.execute(self.statements.marked, {"presented": used, "now": now}).scalars())
            said = f"says the write {f'committed ({len(marked)} of {len(used)})' if marked else 'did not commit'}"
        except DBAPIError:
            marked, said = set(), "cannot be asked either"
        log.warning("a batch's write lost its connection (%s); the store %s", type(exc).__name__, said)
        if not marked:
            raise exc
        return marked

    def _carry_out(self, batch: list[_Presentation], read: Callable[[list[str]], Iterable[Any]],
                   use_and_insert: Callable[[dict[str, dict[str, Any] | None], list[str]], set[str]]
                   ) -> list[tuple[_Presentation, Any]]:
        """Reads the presented credentials (`read`: rows laid out as `statements.read`'s), asks each
        presentation's `decide`, and hands the credentials to use - each with the successor of the
        first presentation that wanted it - to `use_and_insert`, which answers those it marked. Both
        get the hashes for their IN lists `padded`."""
        st = self.statements
        found = {}
        for row in read(padded(list(dict.fromkeys(item.presented for item in batch)))):
            credential, grant, user = split(row, st.layout)
            found[getattr(credential, st.key)] = (credential, grant, user)
        decided = []
        first: dict[str, dict[str, Any] | None] = {}  # the first presentation wanting each credential: its successor
        for item in batch:
            try:
                use, successor, answer = item.decide(found.get(item.presented))
            except Exception as exc:  # noqa: BLE001 - this presentation's own failure
                item.done.set_exception(exc)
                continue
            decided.append((item, use, answer))
            if use:
                first.setdefault(item.presented, successor)
        unused = use_and_insert(first, padded(list(first))) if first else set()
        answers: list[tuple[_Presentation, Any]] = []
        for item, use, answer in decided:
            if not use:
                answers.append((item, answer))
            elif item.presented in unused:
                unused.discard(item.presented)  # the first presentation in the batch wins
                answers.append((item, answer))
            else:
                answers.append((item, REUSED))
        return answers
