"""The user's second factors, recovery codes and trusted ("remembered") devices, in the store.

Secrets of factors (the TOTP seed) are encrypted at rest like signing keys: JWE (dir + A256GCM)
under a sub-key of the configured secret. Recovery codes are stored as HMAC-SHA256 under another
sub-key: they are high-entropy and single-use, so a slow hash buys nothing, and the key makes a
stolen table useless on its own.

Wrong answers (codes of any kind) count per user in the throttles table under ``mfa:<user id>``:
from MAX_FAILURES on, each further failure locks verification for twice as long as the last one
(LOCK_SECONDS, then doubling, at most MAX_LOCK_SECONDS); a success clears the count.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from joserfc import jwe
from joserfc.jwk import OctKey
from sqlalchemy import bindparam, delete, exists, func, or_, select, update

from ..security import derive_key, random_token, sha256_hex
from ..store.db import Database, aware, utcnow
from ..store.models import MfaFactor, RecoveryCode, RememberedDevice, Throttle

_ENROLLED = select(exists().where(MfaFactor.__table__.c.user_id == bindparam("user_id"),
                                  MfaFactor.__table__.c.confirmed_at.is_not(None)))

JWE_HEADER = {"alg": "dir", "enc": "A256GCM"}
RECOVERY_COUNT = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read from paper
MAX_FAILURES = 5
LOCK_SECONDS = 30
MAX_LOCK_SECONDS = 900
MAX_FACTORS = 20  # per user, pending included


def format_recovery_code(raw: str) -> str:
    return f"{raw[:5]}-{raw[5:]}"


def normalise_recovery_code(value: str) -> str:
    return "".join(ch for ch in value.lower() if ch.isalnum())[:32]


class MfaService:
    def __init__(self, db: Database, remember_days: int, *, master: bytes | None = None):
        self.db = db
        self.remember_days = remember_days
        master = master if master is not None else secrets.token_bytes(32)
        self._box = OctKey.import_key(derive_key(master, "idbroker mfa secrets"))
        self._recovery_key = derive_key(master, "idbroker recovery codes")

    # -- secrets at rest ---------------------------------------------------------------------------
    def seal(self, plaintext: str) -> str:
        return jwe.encrypt_compact(JWE_HEADER, plaintext.encode(), self._box)

    def unseal(self, token: str) -> str:
        return jwe.decrypt_compact(token, self._box).plaintext.decode()  # type: ignore[union-attr]

    # -- factors ---------------------------------------------------------------------------------
    def enrolled(self, user_id: int) -> bool:
        with self.db.reads.connect() as conn:  # asked at sign-in under the "optional" policy: prebuilt
            return bool(conn.execute(_ENROLLED, {"user_id": user_id}).scalar())

    def factors(self, user_id: int) -> list[MfaFactor]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(MfaFactor).where(MfaFactor.user_id == user_id,
                                                          MfaFactor.confirmed_at.is_not(None))
                                  .order_by(MfaFactor.created_at, MfaFactor.id)))

    def factor(self, user_id: int, factor_id: str, *, pending: bool = False) -> MfaFactor | None:
        """The user's factor (confirmed; or only unconfirmed when `pending`), or None."""
        if not factor_id or len(factor_id) > 64:
            return None
        with self.db.session(write=False) as s:
            row = s.get(MfaFactor, factor_id)
        if row is None or row.user_id != user_id or (row.confirmed_at is None) != pending:
            return None
        return row

    def add_pending(self, user_id: int, kind: str, *, name: str = "", secret: str | None = None,
                    data: dict | None = None) -> MfaFactor:
        """A factor being set up: unconfirmed until its first response. Older unfinished set-ups
        of the user are dropped."""
        now = utcnow()
        row = MfaFactor(id=random_token(16), user_id=user_id, kind=kind, name=name[:128],
                        secret=self.seal(secret) if secret is not None else None, data=data,
                        confirmed_at=None, created_at=now, last_used_at=None, last_counter=None)
        with self.db.session() as s:
            s.execute(delete(MfaFactor).where(MfaFactor.user_id == user_id, MfaFactor.confirmed_at.is_(None),
                                              MfaFactor.created_at < now - timedelta(hours=1)))
            count = s.scalar(select(func.count()).select_from(MfaFactor).where(MfaFactor.user_id == user_id))
            if count and count >= MAX_FACTORS:
                s.execute(delete(MfaFactor).where(MfaFactor.user_id == user_id, MfaFactor.confirmed_at.is_(None)))
            s.add(row)
        return row

    def confirm(self, factor_id: str, *, counter: int | None = None) -> bool:
        now = utcnow()
        with self.db.session() as s:
            done = s.execute(update(MfaFactor).where(MfaFactor.id == factor_id, MfaFactor.confirmed_at.is_(None))
                             .values(confirmed_at=now, last_used_at=now, last_counter=counter)).rowcount
        return done == 1

    def use_counter(self, factor_id: str, counter: int) -> bool:
        """Records `counter` (a TOTP time step) as used when it is newer than the last one: a code
        is good once, and never after a later one (atomic: two requests cannot both win)."""
        with self.db.session() as s:
            done = s.execute(update(MfaFactor).where(
                MfaFactor.id == factor_id,
                or_(MfaFactor.last_counter.is_(None), MfaFactor.last_counter < counter))
                .values(last_counter=counter, last_used_at=utcnow())).rowcount
        return done == 1

    def touch(self, factor_id: str) -> None:
        with self.db.session() as s:
            s.execute(update(MfaFactor).where(MfaFactor.id == factor_id).values(last_used_at=utcnow()))

    def rename(self, user_id: int, factor_id: str, name: str) -> bool:
        with self.db.session() as s:
            done = s.execute(update(MfaFactor).where(MfaFactor.id == factor_id, MfaFactor.user_id == user_id)
                             .values(name=name[:128])).rowcount
        return done == 1

    def remove(self, user_id: int, factor_id: str) -> MfaFactor | None:
        with self.db.session() as s:
            row = s.get(MfaFactor, factor_id)
            if row is None or row.user_id != user_id:
                return None
            s.delete(row)
        return row

    # -- recovery codes ----------------------------------------------------------------------------
    def _recovery_hash(self, user_id: int, normalised: str) -> str:
        return hmac.new(self._recovery_key, f"{user_id}:{normalised}".encode(), hashlib.sha256).hexdigest()

    def new_recovery_codes(self, user_id: int) -> list[str]:
        """RECOVERY_COUNT fresh codes (shown once, formatted xxxxx-xxxxx); the old ones are void."""
        codes = ["".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10)) for _ in range(RECOVERY_COUNT)]
        now = utcnow()
        with self.db.session() as s:
            s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
            for code in codes:
                s.add(RecoveryCode(user_id=user_id, code_hash=self._recovery_hash(user_id, code), used_at=None,
                                   created_at=now))
        return [format_recovery_code(c) for c in codes]

    def use_recovery_code(self, user_id: int, value: str) -> bool:
        code = normalise_recovery_code(value)
        if len(code) != 10:
            return False
        with self.db.session() as s:
            done = s.execute(update(RecoveryCode).where(
                RecoveryCode.user_id == user_id, RecoveryCode.code_hash == self._recovery_hash(user_id, code),
                RecoveryCode.used_at.is_(None)).values(used_at=utcnow())).rowcount
        return done == 1

    def recovery_codes_left(self, user_id: int) -> int:
        with self.db.session(write=False) as s:
            return s.scalar(select(func.count()).select_from(RecoveryCode).where(
                RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))) or 0

    # -- wrong answers --------------------------------------------------------------------------
    def locked_for(self, user_id: int) -> int:
        """Seconds until this user may try a code again (0: now)."""
        with self.db.session(write=False) as s:
            row = s.get(Throttle, f"mfa:{user_id}")
        if row is None or row.locked_until is None:
            return 0
        return max(0, int((aware(row.locked_until) - utcnow()).total_seconds()))

    def failed(self, user_id: int) -> None:
        now = utcnow()
        key = f"mfa:{user_id}"
        with self.db.session() as s:
            row = s.get(Throttle, key, with_for_update=True)
            if row is None:
                row = Throttle(key=key, failures=0, first_failure_at=now)
                s.add(row)
            row.failures = (row.failures or 0) + 1
            row.last_failure_at = now
            if row.failures >= MAX_FAILURES:
                seconds = min(MAX_LOCK_SECONDS, LOCK_SECONDS * 2 ** (row.failures - MAX_FAILURES))
                row.locked_until = now + timedelta(seconds=seconds)

    def succeeded(self, user_id: int) -> None:
        with self.db.session() as s:
            s.execute(delete(Throttle).where(Throttle.key == f"mfa:{user_id}"))

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
            rows = list(s.scalars(select(RememberedDevice).where(RememberedDevice.user_id == user_id)
                                  .order_by(RememberedDevice.created_at)))
        return [r for r in rows if aware(r.expires_at) > now]

    def forget_device(self, user_id: int, id_hash: str) -> bool:
        with self.db.session() as s:
            done = s.execute(delete(RememberedDevice).where(RememberedDevice.user_id == user_id,
                                                            RememberedDevice.id_hash == id_hash)).rowcount
        return done == 1
