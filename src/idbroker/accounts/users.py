"""The user pool: create, find, authenticate, change password, disable."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import bindparam, select

from ..security import random_token
from ..store.db import Database, utcnow
from ..store.models import User
from .passwords import Passwords
from .policy import PasswordPolicy, PasswordRejected

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PROFILE_FIELDS = ("given_name", "family_name", "middle_name", "nickname", "preferred_username",
                  "picture", "website", "gender", "birthdate", "zoneinfo", "locale",
                  "phone_number", "address", "groups", "custom_attributes")
MAX_PASSWORD = 1024  # longer input is not even hashed
_BY_EMAIL = select(User.__table__).where(User.__table__.c.email == bindparam("email"))


class UserError(ValueError):
    pass


def normalise_email(email: str) -> str:
    return email.strip().lower()


class UserService:
    def __init__(self, db: Database, passwords: Passwords, policy: PasswordPolicy | None = None):
        self.db = db
        self.passwords = passwords
        self.policy = policy or PasswordPolicy()

    def check_password(self, password: str, email: str | None = None) -> None:
        """Raises UserError saying why a password is refused."""
        try:
            self.policy.check(password, email=email)
        except PasswordRejected as exc:
            raise UserError(str(exc)) from exc

    def create(self, email: str, password: str | None, *, email_verified: bool = False, policy_checked: bool = False,
               **profile: Any) -> User:
        """policy_checked: the caller has checked the password against the policy already (the
        sign-up form did, and must not take longer for a new address than for a known one)."""
        email = normalise_email(email)
        if not EMAIL_RE.match(email):
            raise UserError(f"{email!r} is not an email address")
        if password is not None and not policy_checked:
            self.check_password(password, email)
        unknown = set(profile) - set(PROFILE_FIELDS)
        if unknown:
            raise UserError(f"unknown profile fields: {', '.join(sorted(unknown))}")
        now = utcnow()
        with self.db.session() as s:
            if s.scalar(select(User.id).where(User.email == email)) is not None:
                raise UserError(f"a user with email {email} already exists")
            profile.setdefault("groups", [])
            user = User(sub=random_token(16), email=email, email_verified=email_verified,
                        password_hash=self.passwords.hash(password) if password else None,
                        created_at=now, updated_at=now, **profile)
            s.add(user)
        return user

    def by_email(self, email: str) -> User | None:
        if "\x00" in email or len(email) > 320:
            return None
        with self.db.reads.connect() as conn:  # every sign-in: a prebuilt statement, no ORM query
            row = conn.execute(_BY_EMAIL, {"email": normalise_email(email)}).first()
        return User(**row._asdict()) if row is not None else None

    def by_id(self, user_id: int) -> User | None:
        with self.db.session(write=False) as s:
            return s.get(User, user_id)

    def list(self, limit: int = 1000) -> list[User]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(User).order_by(User.id).limit(limit)))

    def authenticate(self, email: str, password: str) -> User | None:
        """The user when the password matches an enabled account, else None, in equal time."""
        return self.check(email, password)[0]

    def check(self, email: str, password: str) -> tuple[User | None, bool]:
        """(the user when the password matches an enabled account, whether an account has that
        address). The password is checked in equal time whether or not the account exists."""
        user = self.by_email(email) if len(password) <= MAX_PASSWORD else None
        ok = self.passwords.verify(user.password_hash if user else None, password[:MAX_PASSWORD])
        known = user is not None or (len(password) > MAX_PASSWORD and self.by_email(email) is not None)
        if not ok or user is None or user.disabled:
            return None, known
        if self.passwords.needs_rehash(user.password_hash or ""):
            self._store_hash(user.id, self.passwords.hash(password))
        return user, True

    def set_password(self, email: str, password: str) -> User:
        user = self._require(email)
        self.check_password(password, user.email)
        self._store_hash(user.id, self.passwords.hash(password))
        return user

    def mark_email_verified(self, user_id: int) -> None:
        with self.db.session() as s:
            row = s.get(User, user_id)
            if row is not None and not row.email_verified:
                row.email_verified = True
                row.updated_at = utcnow()

    def set_disabled(self, email: str, disabled: bool = True) -> User:
        user = self._require(email)
        with self.db.session() as s:
            row = s.get(User, user.id)
            row.disabled = disabled
            row.updated_at = utcnow()
        return row

    def _require(self, email: str) -> User:
        user = self.by_email(email)
        if user is None:
            raise UserError(f"no user with email {normalise_email(email)}")
        return user

    def _store_hash(self, user_id: int, password_hash: str) -> None:
        with self.db.session() as s:
            row = s.get(User, user_id)
            row.password_hash = password_hash
            row.updated_at = utcnow()
