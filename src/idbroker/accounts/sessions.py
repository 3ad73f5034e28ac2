"""Server-side browser sessions behind an HttpOnly cookie (single sign-on).

Creating, looking up and joining a session happen on every sign-in and most pages: those
statements are built once, with bound parameters, and run on a plain connection (reads) or on
the write transaction's connection, without the ORM's per-statement work."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from ..security import random_token, sha256_hex
from ..store.db import Database, aware, upsert_insert, utcnow
from ..store.models import BrowserSession, SessionClient, User
from ..text import N_

_sessions, _users = BrowserSession.__table__, User.__table__
_INSERT = insert(_sessions)
_LOOKUP = (select(_sessions, _users).join(_users, _users.c.id == _sessions.c.user_id)
           .where(_sessions.c.id_hash == bindparam("id_hash")))
_END = (update(_sessions).where(_sessions.c.sid == bindparam("ended_sid"), _sessions.c.ended_at.is_(None))
        .values(ended_at=bindparam("now")))


@cache
def _add_client(dialect: str) -> Any:
    return upsert_insert(dialect)(SessionClient.__table__).on_conflict_do_nothing()


UNKNOWN_BROWSER = N_("Unknown browser")
UNKNOWN_SYSTEM = N_("unknown system")
# (token in the User-Agent, name shown), first match wins: order matters (Edge and Opera
# also say Chrome, Chrome also says Safari).
_BROWSERS = [("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("FxiOS", "Firefox"),
             ("CriOS", "Chrome"), ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl")]
_SYSTEMS = [("Windows", "Windows"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"),
            ("Mac OS X", "macOS"), ("Macintosh", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux")]


def describe_device(user_agent: str | None) -> tuple[str, str]:
    """(browser, system) from a User-Agent, as the account pages and the security mails name a
    session's device; message ids when unknown."""
    ua = user_agent or ""
    browser = next((name for token, name in _BROWSERS if token in ua), UNKNOWN_BROWSER)
    system = next((name for token, name in _SYSTEMS if token in ua), UNKNOWN_SYSTEM)
    return browser, system


class SessionService:
    def __init__(self, db: Database, ttl: int):
        self.db = db
        self.ttl = ttl

    def create(self, user: User, amr: list[str], acr: str | None, *, user_agent: str | None = None,
               ip: str | None = None, ttl: int | None = None, idp: str | None = None,
               session: Session | None = None) -> tuple[str, BrowserSession]:
        """A fresh session (never reuses the old id: no session fixation), living `ttl` seconds
        (default: session_ttl). Returns the cookie value. With `session`, in that transaction."""
        from ..mfa.policy import has_second_factor

        cookie = random_token(32)
        now = utcnow()
        row = BrowserSession(id_hash=sha256_hex(cookie), sid=random_token(16), user_id=user.id,
                             auth_time=now, amr=amr, acr=acr, idp=idp, created_at=now,
                             expires_at=now + timedelta(seconds=ttl or self.ttl), ended_at=None,
                             user_agent=(user_agent or "")[:512], ip=ip,
                             factor_at=now if has_second_factor(amr) else None)
        values = {c.key: getattr(row, c.key) for c in _sessions.columns}
        with self.db.using(session) as s:
            s.connection().execute(_INSERT, values)
        return cookie, row

    def lookup(self, cookie: str | None) -> tuple[BrowserSession, User] | None:
        """The live session and its (enabled) user for a cookie value, or None."""
        if not cookie or len(cookie) > 128:
            return None
        with self.db.reads.connect() as conn:
            found = conn.execute(_LOOKUP, {"id_hash": sha256_hex(cookie)}).first()
        if found is None:
            return None
        row = found._mapping
        if row[_sessions.c.ended_at] is not None or aware(row[_sessions.c.expires_at]) <= utcnow() \
                or row[_users.c.disabled]:
            return None
        return (BrowserSession(**{c.key: row[c] for c in _sessions.columns}),
                User(**{c.key: row[c] for c in _users.columns}))

    def add_factor(self, sid: str, amr: str) -> None:
        """A second factor was passed in this session: amr gains it (and "mfa"), acr rises."""
        from ..mfa.policy import session_acr

        with self.db.session() as s:
            row = s.scalar(select(BrowserSession).where(BrowserSession.sid == sid))
            if row is None:
                return
            methods = list(dict.fromkeys([*row.amr, amr, "mfa"]))
            row.amr = methods
            row.acr = session_acr(methods)
            row.factor_at = utcnow()

    def add_client(self, sid: str, client_id: str, session: Session | None = None) -> None:
        with self.db.using(session) as s:
            conn = s.connection()
            conn.execute(_add_client(conn.dialect.name), {"sid": sid, "client_id": client_id})

    def clients_of(self, sid: str) -> list[str]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(SessionClient.client_id).where(SessionClient.sid == sid)))

    def end(self, sid: str, session: Session | None = None) -> bool:
        with self.db.using(session) as s:
            done = s.connection().execute(_END, {"ended_sid": sid, "now": utcnow()}).rowcount
        return bool(done)

    def end_all_for_user(self, user_id: int) -> None:
        with self.db.session() as s:
            s.execute(update(BrowserSession).where(BrowserSession.user_id == user_id,
                                                   BrowserSession.ended_at.is_(None))
                      .values(ended_at=utcnow()))
