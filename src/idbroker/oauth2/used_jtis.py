"""jti values already accepted, shared by every worker and node through the store.

Why. A DPoP proof (RFC 9449 §11.1) and a request object with a jti (RFC 9101 §10.8) must be
accepted once; an in-process set would let a replay through on the next worker or node.
How. One row per (kind, issuer, jti), keyed by a SHA-256 of the three so that any jti fits the
column; the insert is the check (the primary key refuses the second one on SQLite and PostgreSQL
alike). Rows carry the time after which the proof or object is refused anyway (its iat window or
exp); store/housekeeping.py RULES purges them after that.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from ..store.db import Database
from ..store.models import UsedJti


class UsedJtis:
    def __init__(self, db: Database):
        self.db = db

    def first_use(self, kind: str, issuer: str, jti: str, until: datetime) -> bool:
        """True the first time (kind, issuer, jti) is seen (and remembered until `until`)."""
        key = hashlib.sha256(f"{kind}\x00{issuer}\x00{jti}".encode()).hexdigest()
        try:
            with self.db.session() as s:
                s.add(UsedJti(key=key, expires_at=until))
        except IntegrityError:
            return False
        return True
