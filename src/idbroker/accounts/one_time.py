"""Single-use secrets sent to users by mail: a link token (256 bits) and, for verification, a
6-digit code that is limited in attempts. Issuing a new one voids the unused ones of the same
purpose; only hashes are stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update

from ..security import random_token, sha256_hex
from ..store.db import Database, aware, utcnow
from ..store.models import OneTimeToken

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"
CHANGE_EMAIL = "change_email"
MAX_CODE_ATTEMPTS = 5


class OneTimeTokens:
    def __init__(self, db: Database, code_key: bytes):
        self.db = db
        self._code_key = code_key

    def _code_hash(self, token_id: str, code: str) -> str:
        return hmac.new(self._code_key, f"{token_id}:{code}".encode(), hashlib.sha256).hexdigest()

    def issue(self, user_id: int, purpose: str, ttl: int, *, new_value: str | None = None,
              with_code: bool = False) -> tuple[str, str | None]:
        """Returns (link token, 6-digit code or None)."""
        token = random_token(32)
        code = f"{secrets.randbelow(1_000_000):06d}" if with_code else None
        token_id = random_token(16)
        now = utcnow()
        with self.db.session() as s:
            s.execute(update(OneTimeToken).where(OneTimeToken.user_id == user_id, OneTimeToken.purpose == purpose,
                                                 OneTimeToken.used_at.is_(None)).values(used_at=now))
            s.add(OneTimeToken(id=token_id, user_id=user_id, purpose=purpose, token_hash=sha256_hex(token),
                               code_hash=self._code_hash(token_id, code) if code else None, new_value=new_value,
                               attempts=0, created_at=now, expires_at=now + timedelta(seconds=ttl), used_at=None))
        return token, code

    def redeem_link(self, token: str, purpose: str) -> OneTimeToken | None:
        """The token's record, marked used atomically; None when unknown, used or expired."""
        if not token or len(token) > 128:
            return None
        now = utcnow()
        with self.db.session() as s:
            done = s.execute(update(OneTimeToken).where(
                OneTimeToken.token_hash == sha256_hex(token), OneTimeToken.purpose == purpose,
                OneTimeToken.used_at.is_(None), OneTimeToken.expires_at > now).values(used_at=now)).rowcount
            if done != 1:
                return None
            return s.scalar(select(OneTimeToken).where(OneTimeToken.token_hash == sha256_hex(token)))

    def peek_link(self, token: str, purpose: str) -> OneTimeToken | None:
        """Valid, unused token without consuming it (to show a form before it is used)."""
        if not token or len(token) > 128:
            return None
        with self.db.session(write=False) as s:
            row = s.scalar(select(OneTimeToken).where(OneTimeToken.token_hash == sha256_hex(token),
                                                      OneTimeToken.purpose == purpose))
        if row is None or row.used_at is not None or aware(row.expires_at) <= utcnow():
            return None
        return row

    def redeem_code(self, user_id: int, purpose: str, code: str) -> OneTimeToken | None:
        """Checks a 6-digit code against the user's live token; every wrong try counts, and after
        MAX_CODE_ATTEMPTS the token is void."""
        code = code.strip()
        now = utcnow()
        with self.db.session() as s:
            row = s.scalar(select(OneTimeToken).where(
                OneTimeToken.user_id == user_id, OneTimeToken.purpose == purpose, OneTimeToken.used_at.is_(None),
                OneTimeToken.expires_at > now).order_by(OneTimeToken.created_at.desc()).limit(1).with_for_update())
            if row is None or row.code_hash is None:
                return None
            row.attempts += 1
            ok = len(code) == 6 and code.isdigit() and hmac.compare_digest(self._code_hash(row.id, code),
                                                                           row.code_hash)
            if ok or row.attempts >= MAX_CODE_ATTEMPTS:
                row.used_at = now
            return row if ok else None

    def last_issued(self, user_id: int, purpose: str) -> datetime | None:
        with self.db.session(write=False) as s:
            when = s.scalar(select(OneTimeToken.created_at).where(OneTimeToken.user_id == user_id,
                                                                  OneTimeToken.purpose == purpose)
                            .order_by(OneTimeToken.created_at.desc()).limit(1))
        return aware(when) if when else None
