"""Group commit of refresh-token rotations.

A rotation writes two rows: the presented token is marked used - only if it still is unused, so
that of two concurrent presentations exactly one wins - and its successor is inserted. On SQLite
every writer waits for the one before it to commit, and on PostgreSQL every commit waits for the
WAL to reach the disk, so under load the time goes into the queue for the lock and into commits,
not into the two rows.

Here the rotations of a process are written by one thread, in batches: whatever rotations are
waiting when the thread comes round are written by one transaction of two statements (one
``UPDATE ... WHERE token_hash IN (...) AND used_at IS NULL RETURNING token_hash``, one multi-row
``INSERT``) and one commit. Nothing waits on purpose: with one rotation waiting, the batch is that
one. A request's thread waits for its batch's commit, so a rotation is durable before its
response is sent, as before. Within a batch the first presentation of a token wins and any other
is a reuse, as between batches.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, update

from ..store.db import Database, utcnow
from ..store.models import RefreshToken

MAX_BATCH = 256

_refresh = RefreshToken.__table__
_USE_MANY = (update(_refresh)
             .where(_refresh.c.token_hash.in_(bindparam("presented", expanding=True)), _refresh.c.used_at.is_(None))
             .values(used_at=bindparam("now"))
             .returning(_refresh.c.token_hash))
_INSERT = insert(_refresh)


@dataclass
class _Rotation:
    presented: str                 # hash of the token presented
    successor: dict[str, Any]      # the new refresh_tokens row
    done: Future = field(default_factory=Future)


class RotationWriter:
    def __init__(self, db: Database, now: Callable[[], datetime] = utcnow):
        self.db = db
        self.now = now
        self._waiting: list[_Rotation] = []
        self._cond = threading.Condition()
        self._pid = 0

    def rotate(self, presented: str, successor: dict[str, Any]) -> bool:
        """Marks the token whose hash is `presented` used and inserts `successor`, unless the token
        was used already (then nothing is written and the answer is False). Blocks until the
        batch it joined has committed; raises what the batch's transaction raised."""
        return self._queue(presented, successor).result()

    async def rotate_async(self, presented: str, successor: dict[str, Any]) -> bool:
        """`rotate` for the event loop: waits for the commit without holding a thread."""
        return await asyncio.wrap_future(self._queue(presented, successor))

    def _queue(self, presented: str, successor: dict[str, Any]) -> Future:
        item = _Rotation(presented, successor)
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
                winners = self._write(batch)
            except BaseException as exc:  # noqa: BLE001 - every waiting request gets the failure
                for item in batch:
                    item.done.set_exception(exc)
            else:
                for item in batch:
                    item.done.set_result(id(item) in winners)

    def _write(self, batch: list[_Rotation]) -> set[int]:
        presented = list(dict.fromkeys(item.presented for item in batch))
        with self.db.session() as s:
            conn = s.connection()
            unused = set(conn.execute(_USE_MANY, {"presented": presented, "now": self.now()}).scalars())
            winners = []
            for item in batch:
                if item.presented in unused:
                    unused.discard(item.presented)  # the first presentation in the batch wins
                    winners.append(item)
            if winners:
                conn.execute(_INSERT, [item.successor for item in winners])
        return {id(item) for item in winners}
