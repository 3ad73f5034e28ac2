"""The SAML side of browser sessions, for single logout (federation/saml.py).

Why: a LogoutRequest must name the NameID and the SessionIndex the IdP gave at sign-in (SAML 2.0
Core §3.7.1), and an IdP's LogoutRequest names them to say which of our sessions to end; neither
is in the browser session itself.

How: one `saml_sessions` row per browser session begun through a SAML upstream, written in the
sign-in's own transaction (the session's sid is its key) and removed with the session or the
provider (foreign keys, ON DELETE CASCADE). `live` answers only sessions not ended nor expired.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..store.db import Database, aware, utcnow
from ..store.models import BrowserSession, SamlSession, User

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class SamlSessions:
    def __init__(self, db: Database):
        self.db = db

    def remember(self, sid: str, provider_id: str, login: dict[str, Any], subject: str, *,
                 session: Session | None = None) -> None:
        """Keeps the NameID XML and SessionIndex of `login` (saml.STATE_LOGIN) for session `sid`."""
        with self.db.using(session) as s:
            s.add(SamlSession(sid=sid, provider_id=provider_id, subject=subject[:255],
                              name_id=str(login["name_id"]),
                              session_index=(login.get("session_index") or None), created_at=utcnow()))
            s.flush()

    def of(self, sid: str) -> SamlSession | None:
        with self.db.session(write=False) as s:
            row = s.get(SamlSession, sid)
            if row is not None:
                s.expunge(row)
            return row

    def live(self, provider_id: str, subject: str, session_indexes: list[str]) -> list[tuple[str, str]]:
        """(sid, user sub) of the live sessions of that provider's `subject`; only those of the
        given session indexes when the IdP names any (Core §3.7.3.2)."""
        query = (select(SamlSession.sid, SamlSession.session_index, User.sub, BrowserSession.expires_at)
                 .join(BrowserSession, BrowserSession.sid == SamlSession.sid)
                 .join(User, User.id == BrowserSession.user_id)
                 .where(SamlSession.provider_id == provider_id, SamlSession.subject == subject,
                        BrowserSession.ended_at.is_(None)))
        now = utcnow()
        with self.db.session(write=False) as s:
            rows = s.execute(query).all()
        return [(r.sid, r.sub) for r in rows if aware(r.expires_at) > now
                and (not session_indexes or r.session_index in session_indexes)]
