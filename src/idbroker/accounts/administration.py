"""What an operator does to users, shared by the admin API (endpoints/admin/) and the CLI
(`idbroker users search|delete|signout|reset-mfa`, `idbroker audit list`): one function each, so
the two never disagree.

Paging is by cursor, not offset: a cursor is the last id a page held, made opaque (base64url of
"u:<id>" or "a:<id>"), and the next page starts after it. Rows created or deleted between two
pages therefore never shift the others: no duplicates, no gaps among the rows that stay.

The group filter is applied in Python over id-ordered batches, because `users.groups` is a JSON
list whose containment test differs between SQLite and PostgreSQL; the batches keep it bounded.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, func, or_, select

from ..security import is_digits
from ..store.db import Database, utcnow
from ..store.models import AuditEvent, LinkedIdentity, MfaFactor, RecoveryCode, RememberedDevice, User
from .users import PROFILE_FIELDS, normalise_email

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
_BATCH = 500
STATUSES = ("active", "disabled")
# What PATCH may change on a user (besides the profile fields).
ADMIN_FIELDS = ("email_verified", "disabled")


class BadCursor(ValueError):
    """The cursor was not one this module handed out."""


def encode_cursor(prefix: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{prefix}:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(prefix: str, cursor: str | None) -> int:
    """The id after which the page starts (0: from the beginning)."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind != prefix or not is_digits(value) or len(value) > 18:
            raise ValueError
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("cursor is not valid") from None


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


def search_users(db: Database, *, email: str | None = None, name: str | None = None, group: str | None = None,
                 status: str | None = None, cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> Page:
    """Users by id; `email` and `name` are case-insensitive substrings, `group` an exact group,
    `status` active or disabled."""
    if status not in (None, *STATUSES):
        raise ValueError("status must be active or disabled")
    limit = max(1, min(limit, MAX_LIMIT))
    after = decode_cursor("u", cursor)
    query = select(User).order_by(User.id)
    if email:
        query = query.where(func.lower(User.email).contains(email.strip().lower(), autoescape=True))
    if name:
        pattern = name.strip().lower()
        query = query.where(or_(*(func.lower(func.coalesce(col, "")).contains(pattern, autoescape=True)
                                  for col in (User.given_name, User.family_name, User.nickname,
                                              User.preferred_username))))
    if status is not None:
        query = query.where(User.disabled.is_(status == "disabled"))
    found: list[User] = []
    with db.session(write=False) as s:
        while len(found) <= limit:
            batch = list(s.scalars(query.where(User.id > after).limit(_BATCH)))
            if not batch:
                break
            after = batch[-1].id
            found += [u for u in batch if group is None or group in (u.groups or [])]
    page = found[:limit]
    more = len(found) > limit
    return Page(page, encode_cursor("u", page[-1].id) if more and page else None)


def search_events(db: Database, *, user_id: int | None = None, kind: str | None = None,
                  since: datetime | None = None, until: datetime | None = None, cursor: str | None = None,
                  limit: int = DEFAULT_LIMIT) -> Page:
    """Audit events, newest first; the cursor continues towards older ones."""
    limit = max(1, min(limit, MAX_LIMIT))
    before = decode_cursor("a", cursor)
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if before:
        query = query.where(AuditEvent.id < before)
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    if kind:
        query = query.where(AuditEvent.kind == kind)
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    if until is not None:
        query = query.where(AuditEvent.created_at < until)
    with db.session(write=False) as s:
        rows = list(s.scalars(query))
    page = rows[:limit]
    return Page(page, encode_cursor("a", page[-1].id) if len(rows) > limit else None)


class UserChangeError(ValueError):
    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems  # (field path, message)
        super().__init__("; ".join(f"{p}: {m}" for p, m in problems))


class SignsOut(Protocol):
    """accounts/lifecycle.py AccountService, as far as used here."""

    def sign_out_others(self, user_id: int, sub: str, keep_sid: str | None, *, keep_apps: bool = False
                        ) -> list[Any]: ...

    def delete_account(self, user: User) -> list[Any]: ...


def update_user_check(changes: dict[str, Any]) -> None:
    """UserChangeError with the path of each field that cannot be set to its value."""
    problems = [(key, "unknown or read-only field") for key in changes
                if key not in PROFILE_FIELDS and key not in ADMIN_FIELDS]
    for key in ADMIN_FIELDS:
        if key in changes and not isinstance(changes[key], bool):
            problems.append((key, "must be true or false"))
    if "groups" in changes and (not isinstance(changes["groups"], list)
                                or not all(isinstance(g, str) and g for g in changes["groups"])):
        problems.append(("groups", "must be a list of non-empty strings"))
    for key in ("address", "custom_attributes"):
        if key in changes and changes[key] is not None and not isinstance(changes[key], dict):
            problems.append((key, "must be an object or null"))
    for key in set(PROFILE_FIELDS) - {"groups", "address", "custom_attributes"}:
        if key in changes and changes[key] is not None and not isinstance(changes[key], str):
            problems.append((key, "must be a string or null"))
        elif isinstance(changes.get(key), str) and len(changes[key]) > User.__table__.columns[key].type.length:
            problems.append((key, f"must be at most {User.__table__.columns[key].type.length} characters"))
    if problems:
        raise UserChangeError(problems)


def update_user(db: Database, user_id: int, changes: dict[str, Any],
                precondition: Callable[[User], None] | None = None) -> User | None:
    """Changes profile fields, `email_verified` and `disabled`; None when there is no such user.
    `precondition(row)` runs on the locked row inside the transaction and may raise to change
    nothing (the admin API's If-Match: no other change can slip in between check and write)."""
    update_user_check(changes)
    with db.session() as s:
        row = s.get(User, user_id, with_for_update=True)
        if row is None:
            return None
        if precondition is not None:
            precondition(row)
        if "phone_number" in changes and changes["phone_number"] != row.phone_number:
            row.phone_number_verified = False
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
    return row


def sign_out_everywhere(accounts: SignsOut, user: User) -> list[Any]:
    """Every session ends (applications told through the returned deliveries) and every grant is
    revoked: no refresh or access token of the user works any more."""
    return accounts.sign_out_others(user.id, user.sub, None)


def reset_mfa(db: Database, user_id: int) -> int:
    """Removes every second factor, recovery code and remembered device; the user signs in with
    the password alone and may enrol again. Returns the number of factors removed."""
    with db.session() as s:
        removed = s.execute(delete(MfaFactor).where(MfaFactor.user_id == user_id)).rowcount
        s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        s.execute(delete(RememberedDevice).where(RememberedDevice.user_id == user_id))
    return removed


def emails_of(db: Database, user_ids: set[int]) -> dict[int, str]:
    with db.session(write=False) as s:
        return {row[0]: row[1] for row in s.execute(select(User.id, User.email).where(User.id.in_(user_ids)))}


def find_user(db: Database, key: str) -> User | None:
    """By email address (as the CLI names users) or sub (as the API does)."""
    if "\x00" in key or len(key) > 320:
        return None
    with db.session(write=False) as s:
        if "@" in key:
            return s.scalar(select(User).where(User.email == normalise_email(key)))
        return s.scalar(select(User).where(User.sub == key))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """A moment given as an age ("90s", "15m", "1h", "7d", "2w": that long ago) or an ISO 8601
    date or time (UTC when it names no zone). ValueError saying what is expected otherwise."""
    from datetime import UTC, timedelta

    value = text.strip()
    if len(value) >= 2 and is_digits(value[:-1]) and value[-1] in _UNITS and len(value) <= 12:
        return (now or utcnow()) - timedelta(seconds=int(value[:-1]) * _UNITS[value[-1]])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is neither an age like 1h or 7d nor an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def linked_identities(db: Database, user_id: int) -> list[LinkedIdentity]:
    """The upstream accounts that sign in as the user (the admin pages' user detail)."""
    with db.session(write=False) as s:
        return list(s.scalars(select(LinkedIdentity).where(LinkedIdentity.user_id == user_id)
                              .order_by(LinkedIdentity.provider_id, LinkedIdentity.subject)))


def set_disabled(db: Database, accounts: SignsOut, user: User, disabled: bool) -> tuple[User | None, list[Any]]:
    """Disables or enables the user (as PATCH disabled does); disabling also signs them out
    everywhere: a disabled user keeps no session or token. The row and the logouts to send."""
    row = update_user(db, user.id, {"disabled": disabled})
    deliveries = sign_out_everywhere(accounts, row) if row is not None and disabled and not user.disabled else []
    return row, deliveries
