"""The device authorization grant (RFC 8628): device codes for TVs and command-line tools.

`start` is the device authorization endpoint's work (§3.1-3.2): a device code (only its hash is
kept) and a user code of USER_CODE_LENGTH characters from USER_CODE_ALPHABET (consonants only:
no vowels, so no words, and nothing that reads as a digit; §6.1), shown XXXX-XXXX. The user types
it on /device (pages/device.py, rate-limited), signs in through the usual door and allows or
denies; `decide` records that (an approval creates the grant). `poll` is the token endpoint's
work (§3.4-3.5): authorization_pending while nobody decided, slow_down when polled faster than
the interval (which then grows by SLOW_DOWN seconds), access_denied, expired_token, or the grant,
once: the device code is used up by the answer that carries tokens.

With ~20^8 (2.5e10) user codes and at most EXPIRES_IN seconds each, guessing one live code
within the /device rate limit is out of reach (§5.1).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from ..security import random_token, sha256_hex
from ..store.db import Database, aware, utcnow
from ..store.models import Client, DeviceCode, Grant, User
from .errors import OAuth2Error
from .grant_store import new_refresh_token

GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
EXPIRES_IN = 600
INTERVAL = 5
SLOW_DOWN = 5
PENDING, APPROVED, DENIED = "pending", "approved", "denied"


class AuthorizationPendingError(OAuth2Error):
    """RFC 8628 §3.5: the user has not yet completed the user interaction steps."""

    error = "authorization_pending"


class SlowDownError(OAuth2Error):
    """RFC 8628 §3.5: polling too fast; the interval grows by 5 seconds for this and later requests."""

    error = "slow_down"


class ExpiredTokenError(OAuth2Error):
    """RFC 8628 §3.5: the device_code has expired; the client may start a new device authorization."""

    error = "expired_token"


class DeviceAccessDeniedError(OAuth2Error):
    """RFC 8628 §3.5: the user denied the authorization request."""

    error = "access_denied"


def normalise(user_code: str) -> str:
    """What the user typed, as stored: upper case, without dashes and spaces (§6.1)."""
    return "".join(ch for ch in user_code.upper() if ch not in "- \t")[:32]


def display(user_code: str) -> str:
    return f"{user_code[:4]}-{user_code[4:]}"


class DeviceCodes:
    def __init__(self, db: Database, verification_uri: str):
        self.db = db
        self.verification_uri = verification_uri

    def start(self, client: Client, scope: str) -> dict[str, Any]:
        """§3.2 device authorization response. Blocking."""
        device_code = random_token(32)
        now = utcnow()
        for _ in range(5):  # a clash of user codes is unlikely; try a few
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
            with self.db.session() as s:
                if s.execute(select(DeviceCode.user_code).where(DeviceCode.user_code == user_code)).first():
                    continue
                s.add(DeviceCode(device_code_hash=sha256_hex(device_code), user_code=user_code,
                                 client_id=client.client_id, scope=scope, status=PENDING, grant_id=None,
                                 interval=INTERVAL, last_polled_at=None, created_at=now,
                                 expires_at=now + timedelta(seconds=EXPIRES_IN)))
            break
        shown = display(user_code)
        return {"device_code": device_code, "user_code": shown, "verification_uri": self.verification_uri,
                "verification_uri_complete": f"{self.verification_uri}?user_code={shown}",
                "expires_in": EXPIRES_IN, "interval": INTERVAL}

    def pending(self, user_code: str) -> DeviceCode | None:
        """The live, undecided authorization a typed user code names, or None. Blocking."""
        code = normalise(user_code)
        if len(code) != USER_CODE_LENGTH:
            return None
        with self.db.session(write=False) as s:
            row = s.execute(select(DeviceCode).where(DeviceCode.user_code == code)).scalar_one_or_none()
        if row is None or row.status != PENDING or aware(row.expires_at) <= utcnow():
            return None
        return row

    def decide(self, user_code: str, *, allow: bool, user: User, auth_time: datetime, amr: list[str],
               acr: str | None, sid: str | None, idp: str | None, grant_ttl: int) -> bool:
        """Records the user's answer; False when the code is no longer pending. Blocking."""
        with self.db.session() as s:
            row = s.execute(select(DeviceCode).where(DeviceCode.user_code == normalise(user_code))
                            .with_for_update()).scalar_one_or_none()
            if row is None or row.status != PENDING or aware(row.expires_at) <= utcnow():
                return False
            if allow:
                now = utcnow()
                grant = Grant(id=random_token(16), client_id=row.client_id, user_id=user.id, sid=sid,
                              scope=row.scope, auth_time=auth_time, amr=amr, acr=acr, idp=idp, created_at=now,
                              expires_at=now + timedelta(seconds=grant_ttl), revoked_at=None)
                s.add(grant)
                s.flush()
                row.grant_id = grant.id
            row.status = APPROVED if allow else DENIED
        return True

    def poll(self, device_code: str, client: Client, refresh_ttl: Callable[[Grant], int | None],
             dpop_jkt: str | None = None) -> tuple[Grant, User | None, str | None]:
        """§3.4-3.5: the approved grant, its user and - when `refresh_ttl(grant)` gives a lifetime - a
        new refresh token of it (its grant's refresh tokens bound to the DPoP key `dpop_jkt` when
        given), or the error to answer.
        Blocking. The device code is used up in the transaction that issues the refresh token and
        reads the user: once it commits, answering needs nothing more from the store, so a connection
        lost after it cannot leave the device with a used-up code and no tokens, and one lost before
        it leaves the code to poll again."""
        now = utcnow()
        with self.db.session() as s:
            row = s.execute(select(DeviceCode).where(DeviceCode.device_code_hash == sha256_hex(device_code))
                            .with_for_update()).scalar_one_or_none()
            if row is None or row.client_id != client.client_id:
                raise InvalidDeviceCode()
            if aware(row.expires_at) <= now:
                raise ExpiredTokenError("the device code expired")
            if row.status == DENIED:
                raise DeviceAccessDeniedError("the user denied the request")
            if row.status == APPROVED:
                grant = s.get(Grant, row.grant_id)
                if grant is None or grant.revoked_at is not None:
                    raise DeviceAccessDeniedError("the authorization was revoked")
                s.execute(delete(DeviceCode).where(DeviceCode.device_code_hash == row.device_code_hash))
                user = s.get(User, grant.user_id)
                ttl = refresh_ttl(grant)
                refresh = None
                if ttl:
                    refresh, token_row = new_refresh_token(grant, scope=grant.scope, ttl=ttl)
                    s.add(token_row)
                    if dpop_jkt:
                        grant.dpop_jkt = dpop_jkt
                s.flush()
                s.expunge_all()
                return grant, user, refresh
            too_soon = row.last_polled_at is not None and \
                (now - aware(row.last_polled_at)).total_seconds() < row.interval
            row.last_polled_at = now
            if too_soon:
                row.interval += SLOW_DOWN
                slow = SlowDownError(f"poll at most every {row.interval} seconds")
            else:
                slow = None
        raise slow or AuthorizationPendingError("the user has not decided yet")


class InvalidDeviceCode(OAuth2Error):
    error = "invalid_grant"

    def __init__(self) -> None:
        super().__init__("the device code is invalid")
