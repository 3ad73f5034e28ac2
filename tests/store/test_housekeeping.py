"""The purge of expired rows (store/housekeeping.py), on both stores."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

from sqlalchemy import func, select

from idbroker.store.db import utcnow
from idbroker.store.housekeeping import RULES, exclusive, purge, purge_if_first
from idbroker.store.models import (
    AuditEvent,
    AuthorizationCode,
    BrowserSession,
    Grant,
    Interaction,
    RefreshToken,
    RevokedToken,
    SessionClient,
    Throttle,
)

HOUR = 3600


def _count(db, model) -> int:
    with db.session(write=False) as s:
        return s.scalar(select(func.count()).select_from(model))


def _grant(provider, user, ttl, sid=None):
    return provider.grants.create_grant(client_id="app", user_id=user.id, sid=sid, scope="openid offline_access",
                                        auth_time=utcnow(), amr=["pwd"], acr=None, ttl=ttl)


def test_expired_rows_go_and_live_rows_stay(provider, register, user):
    register()
    db = provider.db
    short = _grant(provider, user, ttl=60)
    long = _grant(provider, user, ttl=30 * 86400)
    for grant in (short, long):
        provider.grants.create_code(grant, redirect_uri=None, nonce=None, code_challenge=None, ttl=60)
        provider.grants.create_refresh_token(grant, scope="openid", ttl=30 * 86400)
    provider.grants.revoke_jti("gone", utcnow() + timedelta(seconds=60))
    provider.grants.revoke_jti("kept", utcnow() + timedelta(days=3))
    _, dead = provider.sessions.create(user, ["pwd"], None, ttl=60)
    _, live = provider.sessions.create(user, ["pwd"], None, ttl=30 * 86400)
    provider.sessions.add_client(dead.sid, "app")
    provider.sessions.add_client(live.sid, "app")
    with db.session() as s:
        s.add(Interaction(id="i-old", client_id="app", params={}, created_at=utcnow(),
                          expires_at=utcnow() + timedelta(seconds=60)))
        s.add(AuditEvent(user_id=user.id, kind="login", created_at=utcnow() - timedelta(days=400)))
        s.add(AuditEvent(user_id=user.id, kind="login", created_at=utcnow()))
        s.add(Throttle(key="acct:x", failures=3, first_failure_at=utcnow(), last_failure_at=utcnow()))

    # Nothing has expired yet: a purge now deletes nothing but the year-old audit event.
    assert purge(db, audit_retention_days=365) == {rule.name: 0 for rule in RULES} | {"audit_events": 1}

    later = utcnow() + timedelta(days=2)
    counts = purge(db, audit_retention_days=365, now=later)
    assert counts["grants"] == 1 and counts["authorization_codes"] == 2 and counts["refresh_tokens"] == 1
    assert counts["sessions"] == 1 and counts["session_clients"] == 1 and counts["interactions"] == 1
    assert counts["revoked_tokens"] == 1 and counts["throttles"] == 1
    with db.session(write=False) as s:
        assert s.scalars(select(Grant.id)).all() == [long.id]
        assert s.scalars(select(RevokedToken.jti)).all() == ["kept"]
        assert s.scalars(select(BrowserSession.sid)).all() == [live.sid]
        assert s.scalars(select(SessionClient.sid)).all() == [live.sid]
        # the short grant's refresh token ended with it; the long one's stays
        assert [rt.grant_id for rt in s.scalars(select(RefreshToken))] == [long.id]
    assert _count(db, AuthorizationCode) == 0 and _count(db, AuditEvent) == 1 and _count(db, Throttle) == 0


def test_revoked_grants_go_a_day_later_and_their_tokens_stay_refused(provider, register, user):
    register()
    grant = _grant(provider, user, ttl=30 * 86400)
    provider.grants.revoke_grant(grant.id)
    assert purge(provider.db, 365)["grants"] == 0
    assert provider.grants.token_state("jti-1", grant.id, None).revoked
    assert purge(provider.db, 365, now=utcnow() + timedelta(days=1, hours=1))["grants"] == 1
    assert _count(provider.db, Grant) == 0
    assert provider.grants.token_state("jti-2", grant.id, None).revoked  # a missing grant counts as revoked


def test_large_backlogs_go_in_batches(provider, register, user):
    register()
    for _ in range(7):
        _grant(provider, user, ttl=1)
    assert purge(provider.db, 365, now=utcnow() + timedelta(hours=1), batch=3)["grants"] == 7
    assert _count(provider.db, Grant) == 0


def test_one_purger_at_a_time(provider):
    db = provider.db
    holding, release = threading.Event(), threading.Event()
    seen: list[bool] = []

    def hold():
        with exclusive(db) as mine:
            seen.append(mine)
            holding.set()
            release.wait(10)

    first = threading.Thread(target=hold)
    first.start()
    assert holding.wait(10)
    try:
        assert purge_if_first(db, 365) is None  # another worker holds it: this round is skipped
    finally:
        release.set()
        first.join(10)
    assert seen == [True]
    assert purge_if_first(db, 365) is not None


def _expired_interaction(db, ident="i-expired"):
    with db.session() as s:
        s.add(Interaction(id=ident, client_id="app", params={}, created_at=utcnow() - timedelta(hours=2),
                          expires_at=utcnow() - timedelta(hours=1)))


def test_every_worker_purges_periodically(database, tmp_path):
    from starlette.testclient import TestClient
    from support import ISSUER, make_settings

    from idbroker.app import create_app
    from idbroker.provider import Provider

    _expired_interaction(database)
    provider = Provider(make_settings(tmp_path, purge_interval=1), db=database)
    random.seed(14)
    seeded = random.getstate()
    with TestClient(create_app(provider=provider), base_url=ISSUER):
        deadline = time.monotonic() + 20  # a bound for a broken test, not a measurement
        while _count(database, Interaction) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The start's spread comes from a generator of its own: a background task that moved the
        # shared one would break whatever seeded it (Hypothesis reports it as a flaky failure).
        assert random.getstate() == seeded
    assert _count(database, Interaction) == 0
