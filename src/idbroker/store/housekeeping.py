"""Housekeeping: deleting rows that no longer mean anything, so the store stays the size of its
live data (expired codes, tokens, grants, sessions and interactions, forgotten throttle rows, and
audit events past their retention).

Why. Codes, refresh tokens, grants, sessions and the rest all carry their own end (`expires_at`);
nothing reads them after it, and without a purge a busy broker's tables grow by millions of rows
a day while every index on them grows with them.

What counts (each rule is one entry of `RULES`, run in that order):
- authorization codes an hour past their expiry (a replay of an expired code is refused either way;
  the hour keeps a just-expired one around for the "replayed code revokes the grant" rule);
- refresh tokens, revoked-token records, interactions, one-time tokens and remembered devices
  past their expiry;
- SAML assertion ids past the end of their assertion's validity (a replay is refused by then anyway);
- pushed authorization requests past their expiry, and used DPoP-proof and request-object jtis
  past the time their proof or object would be refused anyway (oauth2/used_jtis.py), and device
  codes (RFC 8628) past their expiry;
- grants past their expiry, or revoked more than a day ago. A token whose grant row is gone counts
  as revoked (oauth2/grant_store.py), and its refresh tokens and codes go with it (ON DELETE
  CASCADE), so removing a revoked grant changes no answer;
- browser sessions past their expiry or ended more than a day ago, and the session-client rows
  of sessions that no longer exist (back-channel logout has nothing left to notify);
- throttle rows whose failures are forgotten (a day after the last one) and that lock nothing;
- audit events older than `audit_retention_days`.

How. Rows go in batches of `BATCH` (a DELETE of the primary keys chosen by a bounded SELECT), each
batch its own short transaction, so on SQLite the writer lock is never held for long and on
PostgreSQL no long transaction holds back vacuum. Grant deletions pass through the change feed like
any other write (store/changes.py), so workers drop cached answers that named them.

When. `idbroker db purge` runs it once. Every worker also runs it every `purge_interval` seconds
(with jitter), but only one at a time across workers and nodes: on PostgreSQL the run holds a
session-level advisory lock (`pg_try_advisory_lock`), on SQLite a non-blocking flock on a file
beside the database; a worker that does not get the lock skips that round.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, or_, select, text

from .db import Database, sqlite_path, utcnow
from .models import (
    AuditEvent,
    AuthorizationCode,
    BrowserSession,
    DeviceCode,
    Grant,
    Interaction,
    OneTimeToken,
    PushedRequest,
    RefreshToken,
    RememberedDevice,
    RevokedToken,
    SeenAssertion,
    SessionClient,
    Throttle,
    UsedJti,
)

log = logging.getLogger("idbroker.housekeeping")

BATCH = 5000
ADVISORY_LOCK_KEY = 0x1DB50E  # the purge's key in PostgreSQL's advisory lock space
ENDED_KEPT = timedelta(days=1)          # ended sessions and revoked grants, for the audit trail's sake
CODE_KEPT = timedelta(hours=1)
THROTTLE_FORGOTTEN = timedelta(days=1)  # accounts/throttle.py: FORGET_AFTER and MAX_WINDOW, both a day


@dataclass(frozen=True)
class Rule:
    """Rows of `model` (by the primary key column `key`) that `expired(now, retention)` selects."""

    name: str
    model: Any
    key: Any
    expired: Callable[[datetime, timedelta], ColumnElement[bool]]


THROTTLES = Rule("throttles", Throttle, Throttle.key, lambda now, _: (
    or_(Throttle.last_failure_at.is_(None), Throttle.last_failure_at < now - THROTTLE_FORGOTTEN)
    & or_(Throttle.first_failure_at.is_(None), Throttle.first_failure_at < now - THROTTLE_FORGOTTEN)
    & or_(Throttle.locked_until.is_(None), Throttle.locked_until < now)))

RULES: tuple[Rule, ...] = (
    Rule("authorization_codes", AuthorizationCode, AuthorizationCode.code_hash,
         lambda now, _: AuthorizationCode.expires_at < now - CODE_KEPT),
    Rule("refresh_tokens", RefreshToken, RefreshToken.token_hash, lambda now, _: RefreshToken.expires_at < now),
    Rule("grants", Grant, Grant.id,
         lambda now, _: or_(Grant.expires_at < now, Grant.revoked_at < now - ENDED_KEPT)),
    Rule("revoked_tokens", RevokedToken, RevokedToken.jti, lambda now, _: RevokedToken.expires_at < now),
    Rule("interactions", Interaction, Interaction.id, lambda now, _: Interaction.expires_at < now),
    Rule("sessions", BrowserSession, BrowserSession.id_hash,
         lambda now, _: or_(BrowserSession.expires_at < now, BrowserSession.ended_at < now - ENDED_KEPT)),
    Rule("session_clients", SessionClient, SessionClient.sid,
         lambda now, _: ~exists().where(BrowserSession.sid == SessionClient.sid)),
    Rule("one_time_tokens", OneTimeToken, OneTimeToken.id, lambda now, _: OneTimeToken.expires_at < now),
    Rule("remembered_devices", RememberedDevice, RememberedDevice.id_hash,
         lambda now, _: RememberedDevice.expires_at < now),
    Rule("seen_assertions", SeenAssertion, SeenAssertion.id, lambda now, _: SeenAssertion.expires_at < now),
    Rule("pushed_requests", PushedRequest, PushedRequest.id, lambda now, _: PushedRequest.expires_at < now),
    Rule("used_jtis", UsedJti, UsedJti.key, lambda now, _: UsedJti.expires_at < now),
    Rule("device_codes", DeviceCode, DeviceCode.device_code_hash, lambda now, _: DeviceCode.expires_at < now),
    THROTTLES,
    Rule("audit_events", AuditEvent, AuditEvent.id, lambda now, retention: AuditEvent.created_at < now - retention),
)


def purge(db: Database, audit_retention_days: int, now: datetime | None = None,
          batch: int = BATCH) -> dict[str, int]:
    """Deletes what `RULES` select; returns the rows deleted per table."""
    now = now or utcnow()
    retention = timedelta(days=audit_retention_days)
    return {rule.name: _run(db, rule, now, retention, batch) for rule in RULES}


def purge_forgotten_throttles(db: Database) -> int:
    """The throttles rule alone, now: the sign-in throttle runs it between rounds of the purge."""
    return _run(db, THROTTLES, utcnow(), timedelta(0), BATCH)


def _run(db: Database, rule: Rule, now: datetime, retention: timedelta, batch: int) -> int:
    condition = rule.expired(now, retention)
    total = 0
    while True:
        with db.session() as s:
            keys = select(rule.key).where(condition).limit(batch).scalar_subquery()
            deleted = s.execute(delete(rule.model).where(rule.key.in_(keys)),
                                execution_options={"synchronize_session": False}).rowcount
        total += deleted
        if deleted < batch:
            return total


@contextmanager
def exclusive(db: Database) -> Iterator[bool]:
    """True when this process is the one purging now (across workers and nodes), else False."""
    path = sqlite_path(db.url)
    if db.url.startswith("sqlite"):
        if path is None:  # an in-memory database belongs to this process alone
            yield True
            return
        fd = os.open(f"{path}-purge.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}).scalar())
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})


def purge_if_first(db: Database, audit_retention_days: int) -> dict[str, int] | None:
    """One round of the periodic purge: None when another worker or node is purging."""
    with exclusive(db) as mine:
        if not mine:
            return None
        counts = purge(db, audit_retention_days)
    if any(counts.values()):
        log.info("purged %s", ", ".join(f"{n} {name}" for name, n in counts.items() if n))
    return counts
