"""The user's enrolled factors and trusted ("remembered") devices, as the journey asks about them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select

from ..security import random_token, sha256_hex
from ..store.db import Database, aware, utcnow
from ..store.models import MfaFactor, RememberedDevice


class MfaService:
    def __init__(self, db: Database, remember_days: int):
        self.db = db
        self.remember_days = remember_days

    def enrolled(self, user_id: int) -> bool:
        with self.db.session(write=False) as s:
            count = s.scalar(select(func.count()).select_from(MfaFactor).where(
                MfaFactor.user_id == user_id, MfaFactor.confirmed_at.is_not(None)))
        return bool(count)

    def factors(self, user_id: int) -> list[MfaFactor]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(MfaFactor).where(MfaFactor.user_id == user_id,
                                                          MfaFactor.confirmed_at.is_not(None))
                                  .order_by(MfaFactor.created_at)))

    # -- remembered devices ---------------------------------------------------------------------
    def remember(self, user_id: int, user_agent: str | None) -> str:
        """A new trusted device; returns the cookie value."""
        value = random_token(32)
        now = utcnow()
        with self.db.session() as s:
            s.add(RememberedDevice(id_hash=sha256_hex(value), user_id=user_id, created_at=now,
                                   expires_at=now + timedelta(days=self.remember_days),
                                   user_agent=(user_agent or "")[:512]))
        return value

    def is_remembered(self, cookie: str | None, user_id: int) -> bool:
        if not cookie or self.remember_days <= 0 or len(cookie) > 128:
            return False
        with self.db.session(write=False) as s:
            row = s.get(RememberedDevice, sha256_hex(cookie))
        return row is not None and row.user_id == user_id and aware(row.expires_at) > utcnow()

    def devices(self, user_id: int) -> list[RememberedDevice]:
        now = utcnow()
        with self.db.session(write=False) as s:
            rows = list(s.scalars(select(RememberedDevice).where(RememberedDevice.user_id == user_id)))
        return [r for r in rows if aware(r.expires_at) > now]

    def forget_devices(self, user_id: int) -> None:
        with self.db.session() as s:
            s.execute(delete(RememberedDevice).where(RememberedDevice.user_id == user_id))
