"""Pending authorization requests, parked while the user logs in or consents.

Every sign-in reads and writes these rows, so the statements are built once, with bound
parameters, and run on a plain connection (a read) or on the connection of the write
transaction: none of the ORM's per-statement work."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from ..security import TOKEN_RE, random_token
from ..store.db import Database, aware, utcnow
from ..store.models import Interaction

_table = Interaction.__table__
_GET = select(_table).where(_table.c.id == bindparam("id"))
_INSERT = insert(_table)
_FINISH = delete(_table).where(_table.c.id == bindparam("id"))
_PURGE = delete(_table).where(_table.c.expires_at < bindparam("now"))


class Interactions:
    PURGE_ODDS = 50

    def __init__(self, db: Database, ttl: int):
        self.db = db
        self.ttl = ttl

    def create(self, client_id: str, params: dict[str, Any]) -> Interaction:
        """A new pending request; now and then (one call in PURGE_ODDS) the expired ones are
        deleted on the way (`get` never returns them anyway)."""
        now = utcnow()
        values = dict(id=random_token(24), client_id=client_id, params=params, login_sid=None, consented=False,
                      created_at=now, expires_at=now + timedelta(seconds=self.ttl))
        with self.db.session() as s:
            conn = s.connection()
            if secrets.randbelow(self.PURGE_ODDS) == 0:
                conn.execute(_PURGE, {"now": now})
            conn.execute(_INSERT, values)
        return Interaction(**values)

    def get(self, interaction_id: str | None) -> Interaction | None:
        if not interaction_id or not TOKEN_RE.match(interaction_id):
            return None
        with self.db.reads.connect() as conn:
            row = conn.execute(_GET, {"id": interaction_id}).first()
        if row is None or aware(row.expires_at) <= utcnow():
            return None
        return Interaction(**row._asdict())

    def mark(self, interaction_id: str, *, login_sid: str | None = None, consented: bool | None = None,
             session: Session | None = None) -> None:
        """Records a login (its session's sid) or a consent on the interaction; with `session`,
        in that transaction."""
        values: dict[str, Any] = {}
        if login_sid is not None:
            values["login_sid"] = login_sid
        if consented is not None:
            values["consented"] = consented
        if not values:
            return
        with self.db.using(session) as s:
            s.connection().execute(update(_table).where(_table.c.id == interaction_id).values(**values))

    def finish(self, interaction_id: str, session: Session | None = None) -> None:
        with self.db.using(session) as s:
            s.connection().execute(_FINISH, {"id": interaction_id})
