"""Per-worker caches of access-token checks (oauth2/tokens.py, store/changes.py) never outlive a
change made by another worker: each test runs two "workers" - two applications with their own
Database objects, caches and change feeds - on one database, warms the first one's caches, changes
something through the second, and expects the first to see it."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update
from starlette.testclient import TestClient
from support import ISSUER, make_settings

from idbroker.app import create_app
from idbroker.provider import Provider
from idbroker.store import changes
from idbroker.store.changes import MAX_STALENESS, PgNotifications
from idbroker.store.db import Database
from idbroker.store.models import RevokedToken, User


@pytest.fixture
def client(register):
    return register(first_party=True)


@pytest.fixture
def other(database, tmp_path) -> Iterator[tuple[Provider, TestClient]]:
    """A second worker: its own Database (connection pool, change feed) on the same store."""
    db = Database(database.url)
    provider = Provider(make_settings(tmp_path), db=db)
    with TestClient(create_app(provider=provider), base_url=ISSUER, follow_redirects=False) as client:
        yield provider, client
    db.dispose()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def warm(http, provider, tokens):
    """Two answers from the first worker (the second from its caches); the feed is listening."""
    deadline = time.monotonic() + 10
    while provider.db.changes.generation() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert provider.db.changes.generation() is not None
    for _ in range(2):
        assert http.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    return provider.db.changes.generation()


def wait_for_news(provider, before):
    """SQLite: the shared counter has moved already. PostgreSQL: the notification arrives
    asynchronously, right after the commit."""
    deadline = time.monotonic() + 10
    while provider.db.changes.generation() == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert provider.db.changes.generation() != before


def test_access_token_revoked_by_another_worker(http, provider, tokens, client, other, database):
    before = warm(http, provider, tokens)
    _, other_http = other
    assert other_http.post("/oauth2/revoke", auth=client.basic,
                           data={"token": tokens["access_token"]}).status_code == 200
    if database.url.startswith("sqlite"):
        assert provider.db.changes.generation() != before  # at once: one file, mapped by both
    wait_for_news(provider, before)
    assert http.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    r = http.post("/oauth2/introspect", auth=client.basic, data={"token": tokens["access_token"]})
    assert r.json() == {"active": False}


def test_grant_revoked_by_another_worker(http, provider, tokens, client, other):
    before = warm(http, provider, tokens)
    r = http.post("/oauth2/introspect", auth=client.basic, data={"token": tokens["access_token"]})
    assert r.json()["active"] is True
    _, other_http = other
    # A refresh token takes its whole grant, and so the access token, with it (RFC 7009 §2.1).
    assert other_http.post("/oauth2/revoke", auth=client.basic,
                           data={"token": tokens["refresh_token"]}).status_code == 200
    wait_for_news(provider, before)
    r = http.post("/oauth2/introspect", auth=client.basic, data={"token": tokens["access_token"]})
    assert r.json() == {"active": False}


def test_user_disabled_by_another_worker(http, provider, tokens, other):
    before = warm(http, provider, tokens)
    other[0].users.set_disabled("alice@example.com")
    wait_for_news(provider, before)
    assert http.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).status_code == 401


@pytest.mark.parametrize("how", ["object", "bulk statement"])
def test_profile_changed_by_another_worker(http, provider, tokens, user, other, how):
    before = warm(http, provider, tokens)
    with other[0].db.session() as s:
        if how == "object":
            s.get(User, user.id).given_name = "Alicia"
        else:
            s.execute(update(User).where(User.id == user.id).values(given_name="Alicia"))
    wait_for_news(provider, before)
    assert http.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).json()["given_name"] == "Alicia"


def test_unrelated_writes_keep_the_caches(http, provider, tokens, flow, client):
    """Signing in and issuing codes and tokens change no earlier answer."""
    before = warm(http, provider, tokens)
    flow.code_flow(client, scope="openid")
    assert provider.db.changes.generation() == before


def test_without_notifications_nothing_is_cached():
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    feed = PgNotifications(engine, retry_seconds=0.05)
    try:
        assert feed.generation() is None
        time.sleep(0.2)  # a few failed connection attempts
        assert feed.generation() is None
    finally:
        feed.close()
        engine.dispose()


def _drop(feed, monkeypatch):
    """The listening connection stays open and delivers nothing (a partition TCP has not noticed)."""
    monkeypatch.setattr(feed, "_received", lambda notification: False)


def _block(feed, monkeypatch):
    """The listener thread hangs at its next delivery until the test ends."""
    released = threading.Event()
    monkeypatch.setattr(feed, "_received", lambda notification: released.wait(STALL_LIMIT) and False)
    return released


STALL_LIMIT = 60.0  # seconds: generous, never reached when the bound holds (MAX_STALENESS is 5)


@pytest.mark.parametrize("stall", [_drop, _block], ids=["deliveries dropped", "listener blocked"])
def test_stalled_notifications_stop_the_caches(http, provider, tokens, client, other, database, monkeypatch,
                                               stall):
    """A listening connection that goes silent without failing: the missing heartbeat turns the
    caches off, so a revocation made elsewhere is honoured although its notification never
    arrives."""
    if not database.url.startswith("postgresql"):
        pytest.skip("notifications are PostgreSQL's")
    feed = provider.db.changes
    warm(http, provider, tokens)
    monkeypatch.setattr(changes, "RECONNECT_AFTER", 3600.0)  # the heartbeat alone must do it
    released = stall(feed, monkeypatch)
    try:
        _, other_http = other
        assert other_http.post("/oauth2/revoke", auth=client.basic,
                               data={"token": tokens["access_token"]}).status_code == 200
        deadline = time.monotonic() + STALL_LIMIT
        while feed.generation() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert feed.generation() is None
        assert http.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
        r = http.post("/oauth2/introspect", auth=client.basic, data={"token": tokens["access_token"]})
        assert r.json() == {"active": False}
    finally:
        if released is not None:
            released.set()


def test_silent_listener_reconnects(database, monkeypatch, caplog):
    """A listening connection that has brought back no heartbeat for RECONNECT_AFTER seconds is
    replaced by a new one."""
    if not database.url.startswith("postgresql"):
        pytest.skip("notifications are PostgreSQL's")
    feed = database.changes
    feed.generation()  # the listener runs
    monkeypatch.setattr(changes, "RECONNECT_AFTER", 0.5)
    _drop(feed, monkeypatch)
    deadline = time.monotonic() + STALL_LIMIT
    while "interrupted (TimeoutError)" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "change notifications interrupted (TimeoutError)" in caplog.text


def test_heartbeats_keep_a_quiet_feed_trusted(database):
    """Without any change for longer than the bound, the feed stays usable: the heartbeats, not the
    changes, vouch for it."""
    if not database.url.startswith("postgresql"):
        pytest.skip("notifications are PostgreSQL's")
    feed = database.changes
    deadline = time.monotonic() + 10
    while feed.generation() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    before = feed.generation()
    assert before is not None
    quiet_until = time.monotonic() + 2 * MAX_STALENESS
    while time.monotonic() < quiet_until:
        assert feed.generation() == before
        time.sleep(0.1)


def _revoke_many(url: str, prefix: str, count: int) -> None:
    db = Database(url)
    expires = datetime.now(UTC) + timedelta(hours=1)
    for i in range(count):
        with db.session() as s:
            s.add(RevokedToken(jti=f"{prefix}-{i}", expires_at=expires))
    db.dispose()


def test_sqlite_counter_counts_every_commit_of_every_process(database):
    """The counter is incremented under the writer lock, which is held across processes: no
    increment is lost when two processes write at once."""
    if not database.url.startswith("sqlite"):
        pytest.skip("the shared counter file is SQLite's")
    before = database.changes.generation()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_revoke_many, args=(database.url, f"p{n}", 60)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert database.changes.generation() == before + 180


def _write_once(url: str, done: str) -> None:
    db = Database(url)
    with db.session() as s:
        s.add(RevokedToken(jti="from-another-process", expires_at=datetime.now(UTC) + timedelta(hours=1)))
    Path(done).write_text(repr(time.time()))
    db.dispose()


def test_sqlite_writer_lock_holds_back_other_processes(database, tmp_path):
    if not database.url.startswith("sqlite"):
        pytest.skip("the writer lock is SQLite's")
    done = tmp_path / "done"
    proc = multiprocessing.get_context("spawn").Process(target=_write_once, args=(database.url, str(done)))
    with database.writer_lock.held():
        proc.start()
        time.sleep(2.0)  # the other process starts and asks for its turn
        assert not done.exists()
        released = time.time()
    proc.join(60)
    assert proc.exitcode == 0 and float(done.read_text()) >= released
