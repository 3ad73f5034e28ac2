"""What signed-in users change about their own account: profile, address (confirmed by mail to the
new address), password, terms acceptance, sessions, connected applications and deletion.

Every change is checked in full before anything is written, and written in one transaction.
Messages are translatable ids (``N_``) with their ``%(name)s`` parameters, shown by the pages.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ..phone import normalise_phone
from ..security import sha256_hex
from ..store.db import aware, utcnow
from ..store.models import BrowserSession, Client, Consent, Grant, OneTimeToken, SessionClient, User
from ..text import N_, SUPPORTED
from .one_time import CHANGE_EMAIL
from .policy import PasswordRejected
from .users import EMAIL_RE, MAX_PASSWORD, normalise_email

if TYPE_CHECKING:
    from ..oauth2.grant_store import GrantStore
    from ..oidc.backchannel import Delivery, SignOut
    from ..store.db import Database
    from .one_time import OneTimeTokens
    from .passwords import Passwords
    from .policy import PasswordPolicy

NAME_MAX = 255
TOO_LONG = N_("Use at most %(max)d characters.")
NAME_INVALID = N_("Remove the control characters from this name.")
LOCALE_INVALID = N_("Choose a language from the list.")
# Shared by every form that takes an address or a phone number (sign-up, account, second factors).
PHONE_INVALID = N_("Enter the number in international format, for example +44 20 7946 0958.")
EMAIL_INVALID = N_("Enter an email address like name@example.com.")
EMAIL_SAME = N_("This is already your email address.")
WRONG_PASSWORD = N_("Your current password is not correct.")
LINK_INVALID = N_("This link is invalid, was already used or has expired. "
                  "Request a new one from your account page.")
EMAIL_TAKEN = N_("This address is now used by another account, so your email address was not changed.")
DELETE_CONFIRM_WRONG = N_("This does not match. Your account was not deleted.")


@dataclass
class Problem:
    """A translatable message id and its placeholders, shown by the pages (next to a field, or as
    the page's error or notice)."""

    message: str
    params: dict[str, Any] = field(default_factory=dict)


class AccountError(ValueError):
    def __init__(self, message: str, **params: Any):
        self.problem = Problem(message, params)
        super().__init__(message)


@dataclass
class ConnectedApp:
    client: Client
    scopes: list[str]
    since: datetime | None


@dataclass
class ProfileCheck:
    values: dict[str, Any]
    errors: dict[str, Problem]


def check_name(value: str) -> Problem | None:
    if len(value) > NAME_MAX:
        return Problem(TOO_LONG, {"max": NAME_MAX})
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return Problem(NAME_INVALID)
    return None


def check_profile(form: dict[str, str]) -> ProfileCheck:
    values: dict[str, Any] = {}
    errors: dict[str, Problem] = {}
    for name in ("given_name", "family_name"):
        raw = form.get(name, "").strip()
        problem = check_name(raw)
        if problem:
            errors[name] = problem
        values[name] = raw or None
    locale = form.get("locale", "").strip()
    if locale and locale not in SUPPORTED:
        errors["locale"] = Problem(LOCALE_INVALID)
    values["locale"] = locale or None
    phone = form.get("phone_number", "").strip()
    if phone:
        normalised = normalise_phone(phone)
        if normalised is None:
            errors["phone_number"] = Problem(PHONE_INVALID)
        values["phone_number"] = normalised
    else:
        values["phone_number"] = None
    return ProfileCheck(values, errors)


class AccountService:
    def __init__(self, db: Database, passwords: Passwords, policy: PasswordPolicy, one_time: OneTimeTokens,
                 signout: SignOut, grants: GrantStore, *, verification_ttl: int):
        self.db = db
        self.passwords = passwords
        self.policy = policy
        self.one_time = one_time
        self.signout = signout
        self.grants = grants
        self.verification_ttl = verification_ttl  # of the link that confirms a new address

    # -- checks ------------------------------------------------------------------------------
    def password_matches(self, user: User, password: str) -> bool:
        """Always runs one argon2 verification, so a wrong password and no password take as long."""
        if len(password) > MAX_PASSWORD:
            password = ""
        return self.passwords.verify(user.password_hash, password) and bool(password)

    # -- profile and terms ------------------------------------------------------------------------
    def update_profile(self, user_id: int, values: dict[str, Any]) -> None:
        with self.db.session() as s:
            row = s.get(User, user_id)
            if row is None:
                return
            if values.get("phone_number") != row.phone_number:
                row.phone_number_verified = False
            for key in ("given_name", "family_name", "locale", "phone_number"):
                setattr(row, key, values.get(key))
            row.updated_at = utcnow()

    def accept_terms(self, user_id: int, version: str) -> None:
        with self.db.session() as s:
            row = s.get(User, user_id)
            if row is not None:
                row.terms_version = version
                row.terms_accepted_at = utcnow()

    # -- change of address ----------------------------------------------------------------------
    def check_new_email(self, user: User, new_email: str) -> str:
        """The normalised address, or AccountError. Says nothing about other accounts."""
        email = normalise_email(new_email)
        if len(email) > 320 or not EMAIL_RE.match(email):
            raise AccountError(EMAIL_INVALID)
        if email == user.email:
            raise AccountError(EMAIL_SAME)
        return email

    def email_in_use(self, email: str) -> bool:
        with self.db.session(write=False) as s:
            return s.scalar(select(User.id).where(User.email == email)) is not None

    def start_email_change(self, user: User, email: str) -> str | None:
        """A link token to mail to `email`, or None when another account holds the address (the
        caller answers the same either way)."""
        if self.email_in_use(email):
            return None
        token, _ = self.one_time.issue(user.id, CHANGE_EMAIL, self.verification_ttl, new_value=email)
        return token

    def pending_email_change(self, token: str) -> OneTimeToken | None:
        return self.one_time.peek_link(token, CHANGE_EMAIL)

    def confirm_email_change(self, token: str) -> tuple[User, str]:
        """Uses the link and changes the address in one transaction, re-checking that no other
        account took it meanwhile. Returns (user, previous address)."""
        if not token or len(token) > 128:
            raise AccountError(LINK_INVALID)
        now = utcnow()
        try:
            with self.db.session() as s:
                row = s.scalar(select(OneTimeToken).where(
                    OneTimeToken.token_hash == sha256_hex(token), OneTimeToken.purpose == CHANGE_EMAIL,
                    OneTimeToken.used_at.is_(None), OneTimeToken.expires_at > now).with_for_update())
                if row is None or not row.new_value:
                    raise AccountError(LINK_INVALID)
                user = s.get(User, row.user_id)
                if user is None or user.disabled:
                    raise AccountError(LINK_INVALID)
                taken = s.scalar(select(User.id).where(User.email == row.new_value, User.id != user.id))
                if taken is not None:
                    raise _Taken()  # rolls back; the link is then voided below
                previous = user.email
                user.email = row.new_value
                user.email_verified = True
                user.updated_at = now
                row.used_at = now
                s.flush()
        except _Taken:
            with self.db.session() as s:
                s.execute(update(OneTimeToken).where(OneTimeToken.token_hash == sha256_hex(token))
                          .values(used_at=now))
            raise AccountError(EMAIL_TAKEN) from None
        except IntegrityError:
            # Another account took the address between the check and the write (unique email).
            raise AccountError(EMAIL_TAKEN) from None
        return user, previous

    def confirm_phone(self, user_id: int, phone: str | None) -> None:
        """The user proved they receive texts at `phone` (still their number)."""
        with self.db.session() as s:
            row = s.get(User, user_id)
            if row is not None and phone and row.phone_number == phone:
                row.phone_number_verified = True
                row.updated_at = utcnow()

    # -- password -----------------------------------------------------------------------------
    def check_new_password(self, user: User, password: str) -> None:
        try:
            self.policy.check(password, email=user.email)
        except PasswordRejected as exc:
            raise AccountError(exc.message, **exc.params) from None

    def change_password(self, user_id: int, password: str, *, keep_sid: str, keep_apps: bool = False
                        ) -> list[Delivery]:
        """New hash, then everything else signed in as the user is signed out (sign_out_others).
        Returns the back-channel logout deliveries to make."""
        new_hash = self.passwords.hash(password)
        with self.db.session() as s:
            row = s.get(User, user_id)
            if row is None:
                return []
            row.password_hash = new_hash
            row.updated_at = utcnow()
            sub = row.sub
        return self.sign_out_others(user_id, sub, keep_sid, keep_apps=keep_apps)

    # -- sessions -------------------------------------------------------------------------------
    def live_sessions(self, user_id: int) -> list[BrowserSession]:
        now = utcnow()
        with self.db.session(write=False) as s:
            rows = list(s.scalars(select(BrowserSession).where(
                BrowserSession.user_id == user_id, BrowserSession.ended_at.is_(None))
                .order_by(BrowserSession.auth_time.desc())))
        return [r for r in rows if aware(r.expires_at) > now]

    def end_session(self, user: User, sid: str) -> list[Delivery]:
        """Ends one of the user's own sessions (nothing when `sid` is not one of them)."""
        if not sid or len(sid) > 64:
            return []
        return self.signout.end(self._live_sids(user.id, only=sid), user.sub)

    def sign_out_others(self, user_id: int, sub: str, keep_sid: str | None, *, keep_apps: bool = False
                        ) -> list[Delivery]:
        """After a change of password, address or second factor, and on "sign out everywhere":
        every session but `keep_sid` (None: every session) ends as at logout, its applications
        told. Unless the user keeps connected applications, every grant not made in `keep_sid` is
        revoked too, offline_access ones and those of sessions that ended earlier included: no
        refresh or access token issued elsewhere works any more (the change feed voids what other
        workers cached). A password reset revokes everything itself (login/recovery.py)."""
        deliveries = self.signout.end(self._live_sids(user_id, exclude=keep_sid), sub)
        if not keep_apps:
            self.grants.revoke_user_grants(user_id, keep_sid=keep_sid)
        return deliveries

    def end_other_sessions(self, user: User, keep_sid: str, *, keep_apps: bool = False) -> list[Delivery]:
        return self.sign_out_others(user.id, user.sub, keep_sid, keep_apps=keep_apps)

    def _live_sids(self, user_id: int, *, only: str | None = None, exclude: str | None = None) -> list[str]:
        query = select(BrowserSession.sid).where(BrowserSession.user_id == user_id,
                                                 BrowserSession.ended_at.is_(None))
        if only is not None:
            query = query.where(BrowserSession.sid == only)
        if exclude is not None:
            query = query.where(BrowserSession.sid != exclude)
        with self.db.session(write=False) as s:
            return list(s.scalars(query))

    # -- connected applications ----------------------------------------------------------------
    def connected_apps(self, user_id: int) -> list[ConnectedApp]:
        """Clients the user consented to or holds live grants for."""
        now = utcnow()
        with self.db.session(write=False) as s:
            consents = {c.client_id: c for c in s.scalars(select(Consent).where(Consent.user_id == user_id))}
            granted: dict[str, tuple[set[str], datetime]] = {}
            for g in s.scalars(select(Grant).where(Grant.user_id == user_id, Grant.revoked_at.is_(None))):
                if aware(g.expires_at) <= now:
                    continue
                scopes, since = granted.get(g.client_id, (set(), aware(g.created_at)))
                granted[g.client_id] = (scopes | set(g.scope.split()), min(since, aware(g.created_at)))
            ids = sorted(set(consents) | set(granted))
            clients = {c.client_id: c for c in s.scalars(select(Client).where(Client.client_id.in_(ids)))} \
                if ids else {}
        apps = []
        for client_id in ids:
            client = clients.get(client_id)
            if client is None:
                continue
            consent = consents.get(client_id)
            scopes = set(consent.scopes) if consent else set()
            since = aware(consent.granted_at) if consent else None
            if client_id in granted:
                scopes |= granted[client_id][0]
                since = min(since, granted[client_id][1]) if since else granted[client_id][1]
            apps.append(ConnectedApp(client, sorted(scopes), since))
        apps.sort(key=lambda a: (a.client.name or a.client.client_id).lower())
        return apps

    def revoke_app(self, user_id: int, client_id: str) -> bool:
        """Forgets the consent and revokes every grant (refresh and access tokens die). False when
        the user had nothing with this client."""
        if not client_id or len(client_id) > 255:
            return False
        with self.db.session() as s:
            forgot = s.execute(delete(Consent).where(Consent.user_id == user_id,
                                                     Consent.client_id == client_id)).rowcount
        revoked = self.grants.revoke_user_client_grants(user_id, client_id)
        return bool(forgot or revoked)

    # -- deletion -----------------------------------------------------------------------------
    def delete_account(self, user: User, precondition: Callable[[User], None] | None = None) -> list[Delivery]:
        """Signs the user out everywhere (telling the applications), then removes the user;
        sessions, grants (with their tokens), consents and one-time tokens go with it
        (ON DELETE CASCADE). `precondition(row)` (If-Match) runs on the locked row before
        anything is changed, and again in the deleting transaction; it may raise."""
        if precondition is not None:
            self._check_locked(user.id, precondition)
        deliveries = self.signout.end(self._live_sids(user.id), user.sub)
        user_id = user.id
        with self.db.session() as s:
            if precondition is not None:
                self._check_locked(user_id, precondition, s)
            sids = list(s.scalars(select(BrowserSession.sid).where(BrowserSession.user_id == user_id)))
            if sids:
                s.execute(delete(SessionClient).where(SessionClient.sid.in_(sids)))
            s.execute(delete(User).where(User.id == user_id))
        return deliveries

    def _check_locked(self, user_id: int, precondition: Callable[[User], None], session: Any = None) -> None:
        with self.db.using(session) as s:
            row = s.get(User, user_id, with_for_update=True)
            if row is not None:
                precondition(row)


class _Taken(Exception):
    pass

