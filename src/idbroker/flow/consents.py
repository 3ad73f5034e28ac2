"""Remembered consent, per user, client and scopes."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from ..store.db import Database, utcnow
from ..store.models import Consent


class Consents:
    def __init__(self, db: Database):
        self.db = db

    def covers(self, user_id: int, client_id: str, scopes: list[str]) -> bool:
        with self.db.session(write=False) as s:
            row = s.get(Consent, (user_id, client_id))
        return row is not None and set(scopes) <= set(row.scopes)

    def remember(self, user_id: int, client_id: str, scopes: list[str], session: Session | None = None) -> None:
        with self.db.using(session) as s:
            row = s.get(Consent, (user_id, client_id))
            if row is None:
                s.add(Consent(user_id=user_id, client_id=client_id, scopes=sorted(set(scopes)),
                              granted_at=utcnow()))
            else:
                row.scopes = sorted(set(row.scopes) | set(scopes))
                row.granted_at = utcnow()

    def forget(self, user_id: int, client_id: str) -> None:
        with self.db.session() as s:
            s.execute(delete(Consent).where(Consent.user_id == user_id, Consent.client_id == client_id))
