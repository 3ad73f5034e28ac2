"""Group commit of one-time credentials (oauth2/one_time_writer.py), on both stores."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from idbroker.oauth2.one_time_writer import (
    AUTHORIZATION_CODES,
    BIND_DPOP_KEY,
    REFRESH_TOKENS,
    REUSED,
    OneTimeWriter,
    _Presentation,
    _Statements,
)
from idbroker.security import random_token, sha256_hex
from idbroker.store.db import utcnow
from idbroker.store.models import Grant, RefreshToken


@pytest.fixture
def grant(provider, register, user):
    register("app")
    return provider.grants.create_grant(client_id="app", user_id=user.id, sid=None, scope="openid offline_access",
                                        auth_time=utcnow(), amr=["pwd"], acr=None, ttl=86400)


def successor(grant_id: str) -> dict:
    now = utcnow()
    return {"token_hash": sha256_hex(random_token(32)), "grant_id": grant_id, "client_id": "app",
            "scope": "openid", "created_at": now, "expires_at": now + timedelta(hours=1), "used_at": None}


def write_if_found(row: dict, answer: str = "rotated"):
    """A decision like the refresh grant's: the successor when the token is known and unused."""
    def decide(found):
        if found is None:
            return False, None, "unknown"
        return (True, row, answer) if found[0].used_at is None else (False, None, "used")
    return decide


def refreshes(provider) -> OneTimeWriter:
    return OneTimeWriter(provider.db, REFRESH_TOKENS)


def stored(provider, token_hash: str) -> RefreshToken | None:
    with provider.db.session(write=False) as s:
        return s.get(RefreshToken, token_hash)


def test_in_one_batch_the_first_presentation_wins(provider, grant):
    token, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    rows = [successor(grant.id) for _ in range(3)]
    first, again, unknown = (_Presentation(sha256_hex(token), write_if_found(rows[0], "first")),
                             _Presentation(sha256_hex(token), write_if_found(rows[1], "again")),
                             _Presentation(sha256_hex("never issued"), write_if_found(rows[2])))
    answers = {id(item): answer for item, answer in refreshes(provider)._write([first, again, unknown])}
    assert answers[id(first)] == "first" and answers[id(again)] is REUSED and answers[id(unknown)] == "unknown"
    assert stored(provider, first.presented).used_at is not None
    assert stored(provider, rows[0]["token_hash"]) is not None
    assert stored(provider, rows[1]["token_hash"]) is None and stored(provider, rows[2]["token_hash"]) is None
    # And in a later batch the token is known as used.
    assert refreshes(provider).present(first.presented, write_if_found(successor(grant.id))) == "used"


def test_a_successor_binds_its_grant_to_a_dpop_key_in_the_same_write(provider, register, user):
    """RFC 9449 §5: the grant of a successor that asks for it (BIND_DPOP_KEY) is bound in the write
    that stores the successor - several in one batch, and only for the presentation that won."""
    register("app")
    grants = [provider.grants.create_grant(client_id="app", user_id=user.id, sid=None, scope="openid",
                                           auth_time=utcnow(), amr=["pwd"], acr=None, ttl=86400) for _ in range(3)]
    tokens = [provider.grants.create_refresh_token(g, scope="openid", ttl=3600)[0] for g in grants]
    asks = ["key-0", "key-1", None]
    batch = [_Presentation(sha256_hex(t), write_if_found({**successor(g.id), **({BIND_DPOP_KEY: k} if k else {})}))
             for t, g, k in zip(tokens, grants, asks, strict=True)]
    batch.append(_Presentation(sha256_hex(tokens[0]), write_if_found({**successor(grants[0].id),
                                                                       BIND_DPOP_KEY: "key-of-the-loser"})))
    answers = [answer for _, answer in refreshes(provider)._write(batch)]
    assert answers == ["rotated", "rotated", "rotated", REUSED]
    with provider.db.session(write=False) as s:
        assert [s.get(Grant, g.id).dpop_jkt for g in grants] == asks


def test_concurrent_rotations_of_different_tokens_all_land(provider, grant):
    tokens = [provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)[0] for _ in range(24)]
    writer = refreshes(provider)
    rows = {t: successor(grant.id) for t in tokens}
    results: dict[str, object] = {}
    barrier = threading.Barrier(len(tokens))

    def go(token: str) -> None:
        barrier.wait()
        results[token] = writer.present(sha256_hex(token), write_if_found(rows[token]))

    threads = [threading.Thread(target=go, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[t] == "rotated" for t in tokens)
    for t in tokens:
        assert stored(provider, sha256_hex(t)).used_at is not None
        assert stored(provider, rows[t]["token_hash"]) is not None


def test_a_refused_decision_fails_that_rotation_only(provider, grant):
    good_token, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    bad_token, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)

    def refuse(found):
        raise ValueError("issued to another client")

    good = _Presentation(sha256_hex(good_token), write_if_found(successor(grant.id)))
    bad = _Presentation(sha256_hex(bad_token), refuse)
    answers = refreshes(provider)._write([bad, good])
    assert [(item, answer) for item, answer in answers] == [(good, "rotated")]
    assert isinstance(bad.done.exception(), ValueError)
    assert stored(provider, bad.presented).used_at is None  # nothing written for it
    assert stored(provider, good.presented).used_at is not None


def test_a_failed_batch_writes_nothing(provider, grant):
    token, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    other, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    row = successor(grant.id)
    good = _Presentation(sha256_hex(token), write_if_found(row))
    clash = _Presentation(sha256_hex(other), write_if_found({**row}))  # two successors with one primary key
    with pytest.raises(Exception):  # noqa: B017 - the store's own integrity error
        refreshes(provider)._write([good, clash])
    assert stored(provider, good.presented).used_at is None  # rolled back
    assert stored(provider, sha256_hex(other)).used_at is None


def test_the_failure_reaches_the_request_and_the_writer_goes_on(provider, grant):
    """The store's error arrives as SQLAlchemy's on both stores (on PostgreSQL the batch runs on the
    psycopg connection itself): the application's handlers know those (a lost server answers 503)."""
    token, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    writer = refreshes(provider)
    with pytest.raises(IntegrityError):  # a foreign key the store enforces
        writer.present(sha256_hex(token), write_if_found(successor("no-such-grant")))
    assert stored(provider, sha256_hex(token)).used_at is None
    assert writer.present(sha256_hex(token), write_if_found(successor(grant.id))) == "rotated"


def test_a_code_is_used_up_with_or_without_a_refresh_token(provider, grant):
    with_refresh = provider.grants.create_code(grant, redirect_uri=None, nonce=None, code_challenge=None, ttl=60)
    without = provider.grants.create_code(grant, redirect_uri=None, nonce=None, code_challenge=None, ttl=60)
    row = successor(grant.id)
    writer = OneTimeWriter(provider.db, AUTHORIZATION_CODES)
    assert writer.present(sha256_hex(with_refresh), lambda found: (True, row, "issued")) == "issued"
    assert writer.present(sha256_hex(without), lambda found: (True, None, "no refresh token")) == "no refresh token"
    assert stored(provider, row["token_hash"]) is not None
    # Used up: the next presentation of either finds it used, and a second use is refused.
    assert writer.present(sha256_hex(without), lambda found: (False, None, found[0].used_at is not None)) is True
    assert writer.present(sha256_hex(without), lambda found: (True, None, "again")) is REUSED


def test_a_credential_used_elsewhere_after_the_read_is_a_reuse(provider, grant):
    """On PostgreSQL the batch reads outside the write: a credential another process uses between
    the two is found unused, yet the write marks only credentials still unused, so the presentation
    is a reuse and its successor is not stored. (On SQLite the batch holds the writer lock from its
    read to its commit: nobody writes in between.)"""
    if provider.db.writer_lock is not None:
        pytest.skip("SQLite: no other writer between the read and the write")
    token, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    other, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    rows = [successor(grant.id), successor(grant.id)]
    decide = write_if_found(rows[0])

    def used_meanwhile(found):
        with provider.db.session() as s:  # another process rotates the token first
            s.get(RefreshToken, sha256_hex(token)).used_at = utcnow()
        return decide(found)

    raced = _Presentation(sha256_hex(token), used_meanwhile)
    fine = _Presentation(sha256_hex(other), write_if_found(rows[1]))
    answers = refreshes(provider)._write([raced, fine])
    assert answers == [(raced, REUSED), (fine, "rotated")]
    assert stored(provider, rows[0]["token_hash"]) is None and stored(provider, rows[1]["token_hash"]) is not None


def test_the_connections_go_back_to_the_pool_as_they_came(provider, grant):
    """On PostgreSQL a batch's statements each commit on their own (autocommit) on a pooled
    connection: it must not go back that way, or every later transaction on it would commit
    statement by statement."""
    if provider.db.writer_lock is not None:
        pytest.skip("SQLite: a batch is a SQLAlchemy transaction")
    token, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    writer = refreshes(provider)
    assert writer.present(sha256_hex(token), write_if_found(successor(grant.id))) == "rotated"
    with pytest.raises(Exception):  # noqa: B017 - a foreign key the store enforces
        writer.present(sha256_hex(provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)[0]),
                       write_if_found(successor("no-such-grant")))
    pool = provider.db.batch_engine.pool
    idle = [pool.connect() for _ in range(pool.checkedin())]  # every connection the pool has
    try:
        assert idle and not any(c.driver_connection.autocommit for c in idle)
    finally:
        for c in idle:
            c.close()


def test_postgresql_keeps_index_scans_for_the_batches_however_small_the_table(provider, grant):
    """The credentials' tables grow by a row a refresh. The generic plan that PostgreSQL settles on
    after five executions of a prepared statement, and keeps, was a sequential scan when made while
    the table was small: on the batches' connections it is an index scan (`make_batch_engine`), and
    the others plan as usual."""
    if provider.db.writer_lock is not None:
        pytest.skip("SQLite: no prepared plans kept across executions")
    rows = [successor(grant.id) for _ in range(1000)]  # a table of a few pages, as in the first minutes
    with provider.db.session() as s:
        s.execute(insert(RefreshToken), rows)
    writer = refreshes(provider)
    for i in range(15):  # batches of 8, one at a time: the same texts on the same connection
        batch = [_Presentation(row["token_hash"], write_if_found(successor(grant.id))) for row in rows[8 * i:8 * i + 8]]
        assert [answer for _, answer in writer._write(batch)] == ["rotated"] * 8

    def plan(conn, starting: str, parameters: int) -> str:
        """The plan this connection's prepared statement `starting ...` runs with now."""
        name, generic = conn.exec_driver_sql(
            "SELECT name, generic_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s AND cardinality(parameter_types) = %s", (starting + "%", parameters)).one()
        assert generic > 0  # PostgreSQL has settled on its generic plan
        return "\n".join(conn.exec_driver_sql(f"EXPLAIN EXECUTE {name}({', '.join(['NULL'] * parameters)})").scalars())

    assert provider.db.batch_engine.pool.checkedin() == 1  # the one the batches ran on
    written = REFRESH_TOKENS.use_and_insert(provider.db.engine.dialect, 8, 8).count("%s")
    with provider.db.batch_engine.connect() as conn:
        read = plan(conn, "SELECT refresh_tokens.token_hash", 8)
        write = plan(conn, "WITH used AS (UPDATE refresh_tokens", written)
    assert "Seq Scan" not in read + write
    assert "refresh_tokens_pkey" in read and "refresh_tokens_pkey" in write  # found through the index
    with provider.db.engine.connect() as conn:  # the same lookup elsewhere: the table is read through
        for _ in range(15):
            conn.exec_driver_sql(f"SELECT token_hash FROM refresh_tokens WHERE token_hash IN ({', '.join(['%s'] * 8)})",
                                 tuple(row["token_hash"] for row in rows[:8])).all()
        assert "Seq Scan on refresh_tokens" in plan(conn, "SELECT token_hash FROM refresh_tokens", 8)


def test_what_arrives_while_the_writer_waits_for_the_lock_joins_its_batch(provider, grant, monkeypatch):
    """On SQLite the batch is taken once the writer lock is the writer's: presentations that queue
    while another transaction holds the lock share one transaction instead of the first going alone."""
    if provider.db.writer_lock is None:
        pytest.skip("PostgreSQL: no writer lock to wait for")
    tokens = [provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)[0] for _ in range(5)]
    writer = refreshes(provider)
    sizes: list[int] = []
    carry_out = writer._carry_out
    monkeypatch.setattr(writer, "_carry_out", lambda batch, *ops: sizes.append(len(batch)) or carry_out(batch, *ops))
    results: list[object] = []
    with provider.db.writer_lock.held():  # another writer's transaction
        threads = [threading.Thread(target=lambda t=t: results.append(
            writer.present(sha256_hex(t), write_if_found(successor(grant.id))))) for t in tokens]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while len(writer._waiting) < len(tokens) and time.monotonic() < deadline:
            time.sleep(0.01)  # all queued: the writer thread waits for the lock, holding none of them
    for t in threads:
        t.join()
    assert results == ["rotated"] * len(tokens) and sizes == [len(tokens)]


def test_batches_of_every_size_share_a_few_statement_texts(provider, grant):
    """Each text a connection runs is a prepared statement it keeps (SQLite: ~31 KB for the read),
    so the IN lists are padded to powers of two: batches of 1 to 20 credentials read with 6 texts
    (1, 2, 4, 8, 16, 32 hashes) and, on SQLite, mark them used with 6 more - not 20 of each - and
    every rotation still lands."""
    statements = _Statements(RefreshToken.__table__, "token_hash", "refresh_token")  # texts of its own (PostgreSQL)
    writer = OneTimeWriter(provider.db, statements)
    ran: list[str] = []

    def record(conn, cursor, statement, *args):  # noqa: ANN001, ANN002, ANN202
        ran.append(statement)

    event.listen(provider.db.engine, "before_cursor_execute", record)
    try:
        for size in range(1, 21):
            tokens = [provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)[0] for _ in range(size)]
            rows = {t: successor(grant.id) for t in tokens}
            batch = [_Presentation(sha256_hex(t), write_if_found(rows[t])) for t in tokens]
            assert [answer for _, answer in writer._write(batch)] == ["rotated"] * size
            assert all(stored(provider, row["token_hash"]) is not None for row in rows.values())
    finally:
        event.remove(provider.db.engine, "before_cursor_execute", record)
    if provider.db.writer_lock is None:  # PostgreSQL: driver SQL on the psycopg connection, kept per text
        reads = {key for key in statements._texts if key[0] == "read"}
        assert sorted(size for *_, size in reads) == [1, 2, 4, 8, 16, 32]
    else:
        reads = {s for s in ran if s.lstrip().startswith("SELECT") and "refresh_tokens.token_hash IN" in s}
        uses = {s for s in ran if s.lstrip().startswith("UPDATE refresh_tokens")}
        assert len(reads) == 6 and len(uses) == 6


@pytest.mark.parametrize("lost", ["the statement", "its answer", "its answer, and the store with it"])
def test_a_write_whose_connection_is_lost_answers_what_the_store_did(provider, relayed, grant, lost):
    """PostgreSQL commits an autocommitted statement before it answers, and the connection can go in
    between (a restart, pg_terminate_backend). A rotation that committed must then be answered as
    done: its client would otherwise present the token again, and that second use of a used token
    is a reuse, which revokes the grant. One that did not commit fails (503) and leaves the token
    unused, so the client's retry rotates it. Asking the store which it was needs the store: gone as
    well, the batch fails."""
    relay, db = relayed
    writer = OneTimeWriter(db, REFRESH_TOKENS)
    token, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    row = successor(grant.id)
    decide = write_if_found(row)

    def cut(found):  # between the batch's read and its write
        relay.lose("request" if lost == "the statement" else "answer", then_refuse="store" in lost)
        return decide(found)

    if lost == "its answer":
        assert writer.present(sha256_hex(token), cut) == "rotated"
        assert stored(provider, sha256_hex(token)).used_at is not None
        assert stored(provider, row["token_hash"]) is not None
        assert writer.present(sha256_hex(token), write_if_found(successor(grant.id))) == "used"
    else:
        with pytest.raises(DBAPIError) as raised:
            writer.present(sha256_hex(token), cut)
        assert raised.value.connection_invalidated  # answered 503 by the application
        written = lost != "the statement"
        assert (stored(provider, sha256_hex(token)).used_at is not None) is written
        assert (stored(provider, row["token_hash"]) is not None) is written
        relay.refusing = False
        if not written:  # the client's retry
            assert writer.present(sha256_hex(token), write_if_found(successor(grant.id))) == "rotated"
    assert relay.lost.is_set()
