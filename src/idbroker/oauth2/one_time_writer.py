"""Group commit of one-time credentials: refresh-token rotations and authorization-code redemptions.

Both read the presented credential (with its grant and user), decide, and write: the credential is
marked used - only if it still is unused, so that of two concurrent presentations exactly one wins
- and a new refresh token may be inserted. On SQLite every writer waits for the one before it to
commit; on PostgreSQL every statement is a round trip and every commit waits for the WAL to reach
the disk. Under load the time would go into those queues, not into the rows.

Here the presentations of one kind in a process are carried out by one thread, in batches:
whatever presentations are waiting once its transaction has begun (on SQLite: once the writer
lock is its own, so that those that arrived during the wait join in) share one transaction of three
statements - one SELECT of all the presented credentials, one ``UPDATE ... WHERE <hash> IN (...)
AND used_at IS NULL RETURNING <hash>``, one multi-row ``INSERT`` of refresh tokens - and one
commit. Nothing waits on purpose: with one presentation waiting, the batch is that one. A request
waits (without holding a thread, from the event loop) until its batch has committed, so what it
was given is durable before its response is sent. Within a batch the first presentation of a
credential wins and any other is a reuse, as between batches. Each presentation's own decision
(`decide`: the request's checks, the refresh token to insert) runs in the batch; what it raises
fails that presentation alone.

Each batch's duration - from the moment it asks for its transaction (on SQLite: its turn on the
writer lock) to its commit - is kept for ``/metrics`` (`drain_batches`): every request of a batch
waits that long, so it is where a token request's tail comes from when it is not the event loop.
"""

import asyncio
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from ..store.db import Database, Samples, utcnow
from ..store.models import AuthorizationCode, Grant, RefreshToken, User
from ..store.rows import Row, layout_of, split

MAX_BATCH = 256

_INSERT_REFRESH = insert(RefreshToken.__table__)

# decide(found) -> (use: mark the credential used, refresh token row to insert or None, the answer
# to give), where `found` is (credential, grant, user) or None for an unknown credential. A
# presentation that wanted to use a credential someone else used first gets REUSED instead.
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
        """How long each batch since the last call took, from asking for its transaction to its commit."""
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
        """One transaction for `batch`, to which `take()` adds the presentations waiting once the
        transaction has begun - on SQLite, once the writer lock is ours, so what arrived while this
        thread waited for the lock goes in too. Returns the answers of the presentations whose
        `decide` did not raise (those that did have their exception set already)."""
        asked = time.perf_counter()
        with self.db.transaction() as conn:
            batch += take()
            answers = self._statements(conn, batch)
        self._durations.add(time.perf_counter() - asked)
        return answers

    def _statements(self, conn: Any, batch: list[_Presentation]) -> list[tuple[_Presentation, Any]]:
        st = self.statements
        presented = list(dict.fromkeys(item.presented for item in batch))
        answers: list[tuple[_Presentation, Any]] = []
        found = {}
        for row in conn.execute(st.read, {"presented": presented}):
            credential, grant, user = split(row, st.layout)
            found[getattr(credential, st.key)] = (credential, grant, user)
        decided = []
        for item in batch:
            try:
                use, successor, answer = item.decide(found.get(item.presented))
            except Exception as exc:  # noqa: BLE001 - this presentation's own failure
                item.done.set_exception(exc)
                continue
            decided.append((item, use, successor, answer))
        wanted = list(dict.fromkeys(item.presented for item, use, _, _ in decided if use))
        unused = set(conn.execute(st.use, {"presented": wanted, "now": self.now()}).scalars()) \
            if wanted else set()
        rows = []
        for item, use, successor, answer in decided:
            if not use:
                answers.append((item, answer))
            elif item.presented in unused:
                unused.discard(item.presented)  # the first presentation in the batch wins
                if successor is not None:
                    rows.append(successor)
                answers.append((item, answer))
            else:
                answers.append((item, REUSED))
        if rows:
            conn.execute(_INSERT_REFRESH, rows)
        return answers
