"""Which local account an upstream sign-in is: the rules that keep federation from being a way
to take over accounts.

Why. An upstream tells us an email address. If that alone chose the local account, anyone who
can make an upstream say "alice@example.com" (a provider that does not verify addresses, a
tenant the attacker controls, a self-hosted OpenID provider) would sign in as Alice. So the
address links an upstream account to a local one only when the operator said this provider's
verified addresses are trusted (`trust_email`) and the upstream says this one is verified.

How, in order (`Linking.resolve`):
1. a link (provider, subject) exists: its user, whatever the address says now (the subject is
   the upstream's stable id; addresses change and are reassigned);
2. the user signed in here first and asked to link (from the account page): the link is made to
   that account - they proved they own it;
3. a local account has the address: linked only with `trust_email` and `email_verified`;
   otherwise refused (`LinkRefused`, TAKEOVER), never merged: the page tells the user to sign in
   to that account first and link the provider from the account page;
4. otherwise a new local account (when sign-up is open for this sign-in: the global setting and
   the client's), its address verified only if the upstream says so (else the journey asks for
   the mailed code, as after sign-up); terms and consent follow in the journey as for anyone.

Unlinking never removes the last way in: an account without a password keeps its last link,
unless it has a passkey it can sign in with (passwordless passkey sign-in works on this broker,
and a confirmed WebAuthn credential is not known to be non-discoverable: passwordless sign-in
asks for a discoverable one).

The session's methods (RFC 8176): ``fed`` plus the upstream's own amr; the upstream's second-factor
values (and ``mfa``) count only when the provider is trusted for MFA (`trust_mfa`) and the
upstream asserted it, so our MFA policy still applies after an upstream that did not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ..accounts.users import EMAIL_RE, UserError, UserService, normalise_email
from ..mfa.policy import SECOND_FACTOR_AMR
from ..mfa.webauthn import KIND as PASSKEY_KIND
from ..oauth2 import constants as c
from ..store.db import Database, utcnow
from ..store.models import LinkedIdentity, MfaFactor, User
from ..text import N_
from .base import AMR_FEDERATED, ExternalIdentity, UpstreamConfig

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# Audit event kinds.
UPSTREAM_FAILED = "login.upstream_failed"
IDENTITY_LINKED = "account.identity_linked"
IDENTITY_UNLINKED = "account.identity_unlinked"

TAKEOVER = N_("An account with this email address already exists. Sign in to it first, then link "
              "%(provider)s from your account page.")
LINKED_ELSEWHERE = N_("This %(provider)s account is already linked to another account.")
NO_EMAIL = N_("%(provider)s did not share an email address, which a new account needs.")
NO_SIGNUP = N_("There is no account for you here, and new accounts cannot be created.")
DISABLED = N_("This account is disabled.")
LAST_WAY_IN = N_("This is the only way to sign in to your account: set a password or add a passkey before "
                "removing it.")

# Profile claims (OIDC Core §5.1) an upstream may fill in a new account, with their column sizes.
PROFILE_CLAIMS = {"given_name": 255, "family_name": 255, "middle_name": 255, "nickname": 255,
                  "preferred_username": 255, "picture": 2048, "website": 2048, "gender": 64, "birthdate": 10,
                  "zoneinfo": 64, "locale": 35}


class LinkRefused(Exception):
    """No account for this upstream sign-in: `message` (a message id, with `params`) for the user."""

    def __init__(self, message: str, **params: Any):
        super().__init__(message)
        self.message = message
        self.params = params


@dataclass(frozen=True)
class Resolved:
    user: User
    linked: bool      # a link was made now
    created: bool     # the account was created now
    used: tuple[str, str] | None = None  # the existing link (provider, subject) whose use is not written yet


def session_methods(identity: ExternalIdentity, provider: UpstreamConfig) -> tuple[list[str], str]:
    """(amr, acr) of a session begun by this upstream sign-in."""
    trusted = provider.trust_mfa and identity.mfa
    upstream = [a for a in identity.amr if isinstance(a, str) and (trusted or a not in SECOND_FACTOR_AMR)]
    amr = list(dict.fromkeys([*upstream, AMR_FEDERATED, *(["mfa"] if trusted else [])]))
    return amr, c.ACR_MFA if trusted else c.ACR_PASSWORD


class Linking:
    def __init__(self, db: Database, users: UserService, *, passkey_sign_in: bool = True):
        """`passkey_sign_in`: whether passwordless passkey sign-in works here (it does not when
        the WebAuthn RP id would be an IP address), so that a passkey counts as a way in."""
        self.db = db
        self.users = users
        self.passkey_sign_in = passkey_sign_in

    def resolve(self, identity: ExternalIdentity, provider: UpstreamConfig, *, signed_in: int | None = None,
                signup_allowed: bool = True, record_use: bool = True) -> Resolved:
        """The local account of an upstream sign-in (the module docstring's rules), or LinkRefused.
        `signed_in`: the user who, signed in, asked to link this provider. When the upstream said
        which groups the user is in, the account's groups (the `groups` claim) follow it. An existing
        link's last use is written here, or, with `record_use=False`, by the caller's own write
        (`record_use(resolved, session)`): one transaction fewer for a sign-in."""
        resolved = self._resolve(identity, provider, signed_in=signed_in, signup_allowed=signup_allowed)
        if resolved.used is not None and record_use:
            self.record_use(resolved)
            resolved = dataclasses.replace(resolved, used=None)
        if identity.groups_asserted:
            resolved = dataclasses.replace(resolved, user=self._follow_groups(resolved.user, list(identity.groups)))
        return resolved

    def record_use(self, resolved: Resolved, session: Session | None = None) -> None:
        """The sign-in's link was used now (with `session`, in that transaction)."""
        if resolved.used is None:
            return
        provider_id, subject = resolved.used
        with self.db.using(session) as s:
            s.execute(update(LinkedIdentity).where(LinkedIdentity.provider_id == provider_id,
                                                   LinkedIdentity.subject == subject).values(last_used_at=utcnow()))

    def _follow_groups(self, user: User, groups: list[str]) -> User:
        if list(user.groups or []) == groups:
            return user
        with self.db.session() as s:
            row = s.get(User, user.id)
            if row is None:
                return user
            row.groups = groups
            row.updated_at = utcnow()
        return row

    def _resolve(self, identity: ExternalIdentity, provider: UpstreamConfig, *, signed_in: int | None,
                 signup_allowed: bool) -> Resolved:
        name = {"provider": provider.name}
        link = self._link(provider.id, identity.subject)
        if link is not None:
            if signed_in is not None and link.user_id != signed_in:
                raise LinkRefused(LINKED_ELSEWHERE, **name)
            return Resolved(self._enabled(link.user_id), False, False, used=(provider.id, identity.subject))
        if signed_in is not None:
            user = self._enabled(signed_in)
            return Resolved(self._link_to(user, identity), True, False)
        email = normalise_email(identity.email or "")
        existing = self.users.by_email(email) if email else None
        if existing is not None:
            if not (provider.trust_email and identity.email_verified):
                raise LinkRefused(TAKEOVER, **name)
            if existing.disabled:
                raise LinkRefused(DISABLED)
            return Resolved(self._link_to(existing, identity), True, False)
        if not signup_allowed:
            raise LinkRefused(NO_SIGNUP)
        if not EMAIL_RE.match(email):
            raise LinkRefused(NO_EMAIL, **name)
        profile = {k: v for k, v in identity.claims.items()
                   if k in PROFILE_CLAIMS and isinstance(v, str) and 0 < len(v) <= PROFILE_CLAIMS[k]}
        try:
            user = self.users.create(email, None, email_verified=identity.email_verified,
                                     groups=list(identity.groups), **profile)
        except UserError:  # created meanwhile by another request: the rules again, from the top
            return self._resolve(identity, provider, signed_in=None, signup_allowed=False)
        return Resolved(self._link_to(user, identity), True, True)

    def links(self, user_id: int) -> list[LinkedIdentity]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(LinkedIdentity).where(LinkedIdentity.user_id == user_id)
                                  .order_by(LinkedIdentity.created_at)))

    def unlink(self, user: User, provider_id: str) -> bool:
        """Removes the user's links to the provider; LinkRefused when they are the last way in.
        False when there was none."""
        with self.db.session() as s:
            mine = select(func.count()).select_from(LinkedIdentity).where(LinkedIdentity.user_id == user.id)
            total = s.scalar(mine) or 0
            these = s.scalar(mine.where(LinkedIdentity.provider_id == provider_id)) or 0
            if not these:
                return False
            passkey = self.passkey_sign_in and self._has_passkey(s, user.id)
            if user.password_hash is None and total - these < 1 and not passkey:
                raise LinkRefused(LAST_WAY_IN)
            s.execute(delete(LinkedIdentity).where(LinkedIdentity.user_id == user.id,
                                                   LinkedIdentity.provider_id == provider_id))
        return True

    @staticmethod
    def _has_passkey(s: Any, user_id: int) -> bool:
        """A passkey the user can sign in with, without a password (mfa/webauthn.py: passwordless
        sign-in takes a discoverable credential; one that reported it is not is no way in)."""
        rows = s.scalars(select(MfaFactor.data).where(MfaFactor.user_id == user_id, MfaFactor.kind == PASSKEY_KIND,
                                                      MfaFactor.confirmed_at.is_not(None)))
        return any((data or {}).get("discoverable") is not False for data in rows)

    def _link(self, provider_id: str, subject: str) -> LinkedIdentity | None:
        with self.db.session(write=False) as s:
            return s.get(LinkedIdentity, (provider_id, subject))

    def _enabled(self, user_id: int) -> User:
        user = self.users.by_id(user_id)
        if user is None or user.disabled:
            raise LinkRefused(DISABLED)
        return user

    def _link_to(self, user: User, identity: ExternalIdentity) -> User:
        now = utcnow()
        try:
            with self.db.session() as s:
                s.add(LinkedIdentity(provider_id=identity.provider_id, subject=identity.subject, user_id=user.id,
                                     email=(identity.email or None) and identity.email[:320], created_at=now,
                                     last_used_at=now))
        except IntegrityError:  # the same upstream account, linked meanwhile by another request
            link = self._link(identity.provider_id, identity.subject)
            if link is None or link.user_id != user.id:
                raise LinkRefused(LINKED_ELSEWHERE, provider=identity.provider_id) from None
        return user
