"""Server-side browser sessions behind an HttpOnly cookie (single sign-on)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..security import random_token, sha256_hex
from ..store.db import Database, aware, utcnow
from ..store.models import BrowserSession, SessionClient, User


class SessionService:
    def __init__(self, db: Database, ttl: int):
        self.db = db
        self.ttl = ttl

    def create(self, user: User, amr: list[str], acr: str | None, *, user_agent: str | None = None,
               ip: str | None = None, ttl: int | None = None, session: Session | None = None
               ) -> tuple[str, BrowserSession]:
        """A fresh session (never reuses the old id: no session fixation), living `ttl` seconds
        (default: session_ttl). Returns the cookie value. With `session`, in that transaction."""
        cookie = random_token(32)
        now = utcnow()
        row = BrowserSession(id_hash=sha256_hex(cookie), sid=random_token(16), user_id=user.id,
                             auth_time=now, amr=amr, acr=acr, created_at=now,
                             expires_at=now + timedelta(seconds=ttl or self.ttl), ended_at=None,
                             user_agent=(user_agent or "")[:512], ip=ip)
        with self.db.using(session) as s:
            s.add(row)
        return cookie, row

    def lookup(self, cookie: str | None) -> tuple[BrowserSession, User] | None:
        """The live session and its (enabled) user for a cookie value, or None."""
        if not cookie or len(cookie) > 128:
            return None
        with self.db.session(write=False) as s:
            found = s.execute(select(BrowserSession, User).join(User, User.id == BrowserSession.user_id)
                              .where(BrowserSession.id_hash == sha256_hex(cookie))).first()
        if found is None:
            return None
        session, user = found
        if session.ended_at is not None or aware(session.expires_at) <= utcnow() or user.disabled:
            return None
        return session, user

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

    def add_client(self, sid: str, client_id: str, session: Session | None = None) -> None:
        with self.db.using(session) as s:
            if s.get_bind().dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            s.execute(insert(SessionClient).values(sid=sid, client_id=client_id).on_conflict_do_nothing())

    def clients_of(self, sid: str) -> list[str]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(SessionClient.client_id).where(SessionClient.sid == sid)))

    def end(self, sid: str, session: Session | None = None) -> bool:
        with self.db.using(session) as s:
            done = s.execute(update(BrowserSession).where(BrowserSession.sid == sid,
                                                          BrowserSession.ended_at.is_(None))
                             .values(ended_at=utcnow())).rowcount
        return bool(done)

    def end_all_for_user(self, user_id: int) -> None:
        with self.db.session() as s:
            s.execute(update(BrowserSession).where(BrowserSession.user_id == user_id,
                                                   BrowserSession.ended_at.is_(None))
                      .values(ended_at=utcnow()))
