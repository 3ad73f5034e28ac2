"""Group commit of refresh-token rotations.

A rotation reads the presented token (with its grant and user), decides, and writes two rows: the
token is marked used - only if it still is unused, so that of two concurrent presentations exactly
one wins - and its successor is inserted. On SQLite every writer waits for the one before it to
commit; on PostgreSQL every statement is a round trip and every commit waits for the WAL to reach
the disk. Under load the time would go into those queues, not into the rows.

Here the rotations of a process are carried out by one thread, in batches: whatever rotations are
waiting when the thread comes round share one transaction of three statements - one SELECT of all
the presented tokens, one ``UPDATE ... WHERE token_hash IN (...) AND used_at IS NULL RETURNING
token_hash``, one multi-row ``INSERT`` - and one commit. Nothing waits on purpose: with one
rotation waiting, the batch is that one. A request waits (without holding a thread, from the
event loop) until its batch has committed, so a rotation is durable before its response is sent.
Within a batch the first presentation of a token wins and any other is a reuse, as between
batches. Each rotation's own decision (`decide`: the request's checks, the successor row) runs in
the batch; what it raises fails that rotation alone.
"""

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from ..store.db import Database, utcnow
from ..store.models import Grant, RefreshToken, User
from ..store.rows import Row, layout_of, split

MAX_BATCH = 256

_refresh = RefreshToken.__table__
_USE_MANY = (update(_refresh)
             .where(_refresh.c.token_hash.in_(bindparam("presented", expanding=True)), _refresh.c.used_at.is_(None))
             .values(used_at=bindparam("now"))
             .returning(_refresh.c.token_hash))
_INSERT = insert(_refresh)
_READ_MANY = (select(_refresh, Grant.__table__, User.__table__)
              .join(Grant.__table__, Grant.__table__.c.id == _refresh.c.grant_id)
              .join(User.__table__, User.__table__.c.id == Grant.__table__.c.user_id)
              .where(_refresh.c.token_hash.in_(bindparam("presented", expanding=True))))


_READ_LAYOUT = layout_of(_refresh, Grant.__table__, User.__table__)

# decide(found) -> (successor row to write, or None, and the answer to give), where `found` is
# (token, grant, user) or None for an unknown token. The answer given for a successor that was not
# written - the token was used by another request in the meantime - is REUSED.
Decision = tuple[dict[str, Any] | None, Any]
REUSED = object()


@dataclass
class _Rotation:
    presented: str                 # hash of the token presented
    decide: Callable[[tuple[Row, Row, Row] | None], Decision]
    done: Future = field(default_factory=Future)


class RotationWriter:
    def __init__(self, db: Database, now: Callable[[], datetime] = utcnow):
        self.db = db
        self.now = now
        self._waiting: list[_Rotation] = []
        self._cond = threading.Condition()
        self._pid = 0

    def rotate(self, presented: str, decide: Callable[[tuple[Row, Row, Row] | None], Decision]) -> Any:
        """Reads the token whose hash is `presented`, asks `decide`, and writes the successor it
        returns - unless the token was used already, then nothing is written and the answer is
        REUSED. Blocks until the batch has committed; raises what `decide` or the batch's
        transaction raised."""
        return self._queue(presented, decide).result()

    async def rotate_async(self, presented: str, decide: Callable[[tuple[Row, Row, Row] | None], Decision]) -> Any:
        """`rotate` for the event loop: waits for the commit without holding a thread."""
        return await asyncio.wrap_future(self._queue(presented, decide))

    def _queue(self, presented: str, decide: Callable[[tuple[Row, Row, Row] | None], Decision]) -> Future:
        item = _Rotation(presented, decide)
        with self._cond:
            self._ensure_thread()
            self._waiting.append(item)
            self._cond.notify()
        return item.done

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():  # first use, or first use after a fork
            self._pid = os.getpid()
            self._waiting = []
            threading.Thread(target=self._run, name="idbroker-rotations", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                answers = self._write(batch)
            except BaseException as exc:  # noqa: BLE001 - every waiting request gets the failure
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc)
            else:
                for item, answer in answers:
                    item.done.set_result(answer)

    def _write(self, batch: list[_Rotation]) -> list[tuple[_Rotation, Any]]:
        """One transaction for the batch; returns the answers of the rotations whose `decide` did
        not raise (those that did have their exception set already)."""
        presented = list(dict.fromkeys(item.presented for item in batch))
        answers: list[tuple[_Rotation, Any]] = []
        with self.db.session() as s:
            conn = s.connection()
            found = {r.token_hash: (r, g, u) for r, g, u in
                     (split(row, _READ_LAYOUT) for row in conn.execute(_READ_MANY, {"presented": presented}))}
            decided = []
            for item in batch:
                try:
                    successor, answer = item.decide(found.get(item.presented))
                except Exception as exc:  # noqa: BLE001 - this rotation's own failure
                    item.done.set_exception(exc)
                    continue
                decided.append((item, successor, answer))
            wanted = list(dict.fromkeys(item.presented for item, successor, _ in decided if successor is not None))
            unused = set(conn.execute(_USE_MANY, {"presented": wanted, "now": self.now()}).scalars()) \
                if wanted else set()
            rows = []
            for item, successor, answer in decided:
                if successor is None:
                    answers.append((item, answer))
                elif item.presented in unused:
                    unused.discard(item.presented)  # the first presentation in the batch wins
                    rows.append(successor)
                    answers.append((item, answer))
                else:
                    answers.append((item, REUSED))
            if rows:
                conn.execute(_INSERT, rows)
        return answers
