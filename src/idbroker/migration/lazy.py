"""Lazy migration: the password way (accounts/password_ways.py) asked after the local pool, and
the forgot-password hook, for addresses that no local account has.

Sign-in (`authenticate`): the enabled sources are asked in their order (sources.py). The first
that returns a `LegacyUser` creates the local account in one transaction (UserService.create:
its attributes, email verified as the source says, groups, custom attributes, the typed password
hashed with argon2id) and the user is signed in - `PasswordOutcome(user)`; from then on the local
pool answers for the address and no source is asked again. No source knowing the address or the
password is None, so the page gives exactly the local wrong-password answer. A source that could
not be asked (`SourceUnavailable`), when no later source knows the user, is
`PasswordOutcome(None, unavailable=UNAVAILABLE)`: "try again later", nothing created, counted as a
failed attempt by the caller (pages/protection.py), and a MIGRATION_SOURCE_UNAVAILABLE audit event.

A source that accepts the password but wants a new one (`must_change_password`, Cognito's
NEW_PASSWORD_REQUIRED) creates the account without a usable password and answers `refused` with
MUST_CHANGE: the user sets a password through our forgot-password / reset flow.

Forgot-password (`lookup`): the sources' `lookup` in order; a user found is created without a
password, and the reset page mails them as any local account. Sources that cannot be asked are
recorded and skipped: the forgot-password page looks the same whatever happened.

The password is never logged and never put in an audit event.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .. import audit
from ..accounts.password_ways import PasswordOutcome
from ..accounts.users import MAX_PASSWORD, PROFILE_FIELDS, UserError, normalise_email
from .legacy import MUST_CHANGE, UNAVAILABLE, LegacyUser, SourceUnavailable

if TYPE_CHECKING:
    from ..accounts.users import UserService
    from ..audit import Audit
    from ..store.models import User
    from .sources import SourceRegistry

log = logging.getLogger("idbroker.migration")

# Longest value each profile column holds (store/models.py); longer values are dropped, not cut.
_LIMITS = {"picture": 2048, "website": 2048, "gender": 64, "birthdate": 10, "zoneinfo": 64, "locale": 35,
           "phone_number": 32}


def profile(legacy: LegacyUser) -> dict[str, Any]:
    """The columns UserService.create takes, from what the source said."""
    out: dict[str, Any] = {}
    for key, value in legacy.claims.items():
        if key not in PROFILE_FIELDS or key in ("groups", "custom_attributes"):
            continue
        if key == "address":
            if isinstance(value, dict):
                out[key] = value
        elif isinstance(value, str) and len(value) <= _LIMITS.get(key, 255):
            out[key] = value
    out["groups"] = [g for g in legacy.groups if isinstance(g, str)]
    out["custom_attributes"] = dict(legacy.custom_attributes) or None
    return out


class LazyMigration:
    def __init__(self, sources: SourceRegistry, users: UserService, audit_trail: Audit):
        self.sources = sources
        self.users = users
        self.audit = audit_trail

    # -- the password way -----------------------------------------------------------------------
    def authenticate(self, login: str, password: str) -> PasswordOutcome | None:
        if not login or not password or "\x00" in login or len(password) > MAX_PASSWORD:
            return None
        down: list[str] = []
        for source_id, source in self.sources.enabled():
            try:
                legacy = source.verify(login, password)
                if legacy is not None and normalise_email(legacy.email) != normalise_email(login):
                    log.warning("source %s answered for another address than the one typed; ignored", source_id)
                    legacy = None
                user = self._create(source_id, legacy, None if legacy.must_change_password else password) \
                    if legacy is not None else None
            except SourceUnavailable as exc:
                down.append(exc.detail)
                self._record_down(source_id, exc.detail, "sign-in")
                continue
            if legacy is None:
                continue
            if user is None:  # created meanwhile by another request: the local pool answers
                local, _ = self.users.check(login, password)
                return PasswordOutcome(local)
            if legacy.must_change_password:
                return PasswordOutcome(None, refused=MUST_CHANGE, detail={"migrated_from": source_id})
            return PasswordOutcome(user, detail={"migrated_from": source_id})
        if down:
            return PasswordOutcome(None, unavailable=UNAVAILABLE, detail={"migration": "unavailable"})
        return None

    # -- forgot-password ------------------------------------------------------------------------
    def lookup(self, login: str) -> User | None:
        """The local account made for `login` from the first source that knows it, or None.
        Never raises for a source that cannot be asked (recorded, then the next is asked)."""
        login = normalise_email(login)
        if not login or "\x00" in login or self.users.by_email(login) is not None:
            return None
        for source_id, source in self.sources.enabled():
            try:
                legacy = source.lookup(login)
                if legacy is not None:
                    return self._create(source_id, legacy, None) or self.users.by_email(login)
            except SourceUnavailable as exc:
                self._record_down(source_id, exc.detail, "forgot-password")
        return None

    # -- the account ----------------------------------------------------------------------------
    def _create(self, source_id: str, legacy: LegacyUser, password: str | None) -> User | None:
        """The account, with `password` hashed (argon2id) or none; None when the address has an
        account already (a concurrent request made it). One transaction (UserService.create)."""
        try:
            user = self.users.create(legacy.email, password, email_verified=legacy.email_verified,
                                     policy_checked=True, **profile(legacy))
        except UserError as exc:
            if self.users.by_email(legacy.email) is not None:
                return None
            detail = f"source {source_id}: its user cannot be created: {exc}"
            log.warning("%s", detail)
            raise SourceUnavailable(detail) from None
        self.audit.record(audit.USER_MIGRATED, user_id=user.id, source=source_id,
                          must_change_password=legacy.must_change_password)
        log.info("user %s migrated from source %s", user.id, source_id)
        return user

    def _record_down(self, source_id: str, detail: str, during: str) -> None:
        self.audit.record(audit.MIGRATION_SOURCE_UNAVAILABLE, source=source_id, during=during, detail=detail[:500])
