"""SQLite under a server's load (store/db.py), on both stores (PostgreSQL has nothing of this to do):
the WAL is copied into the database file by the serving workers in the background
(Database.checkpoint), not by whichever writer's commit crosses SQLite's threshold while holding the
writer lock; and the connection pool hands out the connection returned last, so that few
connections' page caches fill."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta

from sqlalchemy import text

from idbroker.store.db import WAL_AUTOCHECKPOINT, sqlite_path, utcnow
from idbroker.store.models import Interaction


def _interaction(db, ident: str) -> None:
    with db.session() as s:
        s.add(Interaction(id=ident, client_id="app", params={}, created_at=utcnow(),
                          expires_at=utcnow() + timedelta(minutes=5)))


def _in_database_file(db, ident: str) -> bool:
    """Whether the row is in the database file itself, leaving aside what only the WAL holds:
    SQLite reads an immutable database without its WAL. (Through SQLite, not a plain open() of the
    file: closing any descriptor of it would drop the POSIX locks the engine's connections hold.)"""
    conn = sqlite3.connect(f"file:{sqlite_path(db.url)}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM interactions WHERE id = ?", (ident,)).fetchone()[0] == 1
    except sqlite3.OperationalError:  # not even the schema is in the file yet
        return False
    finally:
        conn.close()


def test_a_serving_worker_checkpoints_soon_after_a_commit(database, tmp_path):
    from starlette.testclient import TestClient
    from support import ISSUER, make_settings

    from idbroker.app import create_app
    from idbroker.provider import Provider

    if not database.has_wal:
        assert database.checkpoint() is None and not database.wal_changed()
        return
    with TestClient(create_app(provider=Provider(make_settings(tmp_path), db=database)), base_url=ISSUER):
        _interaction(database, "i-checkpointed")
        assert database.wal_changed()
        deadline = time.monotonic() + 20  # a bound for a broken test, not a measurement

        def checkpointed() -> bool:  # the WAL's state is recorded once the copy has returned: both, then
            return _in_database_file(database, "i-checkpointed") and not database.wal_changed()

        while not checkpointed() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _in_database_file(database, "i-checkpointed")
        assert not database.wal_changed()


def test_without_a_server_the_row_stays_in_the_wal_until_a_checkpoint(database):
    if not database.has_wal:
        return
    database.checkpoint()  # what earlier tests wrote, the schema included
    _interaction(database, "i-in-wal")
    time.sleep(0.3)
    assert not _in_database_file(database, "i-in-wal")  # SQLite's own threshold is far off
    log, copied = database.checkpoint()
    assert log == copied > 0
    assert _in_database_file(database, "i-in-wal")
    assert not database.wal_changed() and database.checkpoint() is not None


def test_every_connection_keeps_sqlites_own_checkpoint_as_a_safety_net(database):
    if not database.has_wal:
        return
    with database.engine.connect() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == WAL_AUTOCHECKPOINT


def test_the_connection_returned_last_is_handed_out_first(database):
    if not database.has_wal:
        return
    first, second, third = (database.engine.connect() for _ in range(3))
    raw = [conn.connection.dbapi_connection for conn in (first, second, third)]
    for conn in (first, second, third):
        conn.close()
    with database.engine.connect() as again:
        assert again.connection.dbapi_connection is raw[2]


def test_a_failing_checkpoint_is_one_line_and_waits_before_the_next_try():
    import logging
    import threading

    import anyio

    from idbroker.app import checkpoint_periodically

    tries: list[int] = []
    lines: list[str] = []

    class Failing:
        def wal_changed(self) -> bool:
            return True

        def checkpoint(self) -> None:
            tries.append(1)
            raise OSError("disk full\nsecond line")

    class Lines(logging.Handler):  # on the broker's logger itself: a server's log set-up stops propagation
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    async def run() -> None:
        with anyio.move_on_after(0.5):
            await checkpoint_periodically(Failing(), 0.01, after_failure=60)

    logger, handler = logging.getLogger("idbroker"), Lines(logging.WARNING)
    logger.addHandler(handler)
    try:  # on a thread of its own: this one may hold an event loop that an earlier test left open
        thread = threading.Thread(target=anyio.run, args=(run,))
        thread.start()
        thread.join(30)
    finally:
        logger.removeHandler(handler)
    assert len(tries) == 1
    assert lines == ["the WAL checkpoint failed (tried again in 60 s): disk full"]
