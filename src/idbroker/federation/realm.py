"""Home-realm discovery for a password typed on our own sign-in page: the password way
(accounts/password_ways.py) that asks a directory (LDAP / Active Directory, federation/ldap.py).

Why. A company's people already have a password, in its directory; they type it on our page, and
the directory, not our local pool, must judge it. The operator says which addresses are the
directory's with `idbroker idp update ID --domain example.com`; an address in one of those domains
is answered by that directory alone (the local pool is not asked, so a local password cannot
stand in for the directory's, nor the other way round).

How (`DirectoryPasswords.authenticate`):
1. Only an address is routed: the login's domain (after the last ``@``) must be one of an ``ldap``
   provider's domains (`UpstreamRegistry.for_domain`). A login that is not an address (an Active
   Directory sAMAccountName such as ``alice``, a uid) is not routed by domain - no domain to route
   by, and guessing a directory for it would make every directory answer for every login - so it
   goes on to the next ways (the local pool, migration sources). A provider that redirects the
   browser (oidc, oauth2, saml) is not asked here: the sign-in page sends the browser there before
   any password is checked (pages/sign_in.py).
2. The directory checks the password (`PasswordAuthority.authenticate`: service-account search,
   then a bind as the user). No entry or a wrong password: a wrong password, the same answer as a
   local one. The directory down, slow or refusing the service account: `UNAVAILABLE` ("try again
   later"), which the caller counts as a failed attempt, so that an outage cannot be used to try
   passwords past the throttle.
3. The local account is the one federation/linking.py resolves for the directory's entry (by its
   link; a new account, linked; an existing account with the same address only when the operator
   trusts the directory's verified addresses - else refused as a takeover, `PasswordOutcome.refused`).
   Sign-up rules: a directory is the operator's own list of people, so an entry of it gets an
   account whatever the public sign-up setting says.
4. The account's groups are the directory's, brought up to date at every sign-in (the `groups`
   claim, oidc/claims.py).
5. The session's methods are `linking.session_methods`' plus ``pwd`` (a password was typed here):
   amr ``pwd`` + ``fed``; the provider's id is the session's `idp` (the `idp` claim).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..accounts.password_ways import PasswordOutcome
from ..accounts.users import EMAIL_RE
from .base import UNAVAILABLE, UpstreamUnavailable
from .kinds import UPSTREAMS
from .linking import LinkRefused, session_methods

if TYPE_CHECKING:
    from .linking import Linking
    from .registry import UpstreamRegistry

log = logging.getLogger("idbroker.federation")

METHOD = "ldap"


class DirectoryPasswords:
    """The password way of the directories whose domains hold the typed address."""

    def __init__(self, upstreams: UpstreamRegistry, linking: Linking):
        self.upstreams = upstreams
        self.linking = linking

    def authenticate(self, login: str, password: str) -> PasswordOutcome | None:
        if not EMAIL_RE.match(login):
            return None  # not an address: not routed by domain (the module docstring, 1.)
        row = self.upstreams.for_domain(login)
        if row is None or not hasattr(UPSTREAMS.get(row.kind), "authenticate"):
            return None  # no provider, or a redirecting one: the page sends the browser there first
        detail = {"idp": row.id}
        found = self.upstreams.get(row.id)
        if found is None:  # its configuration no longer builds: the directory cannot be asked
            return PasswordOutcome(None, unavailable=UNAVAILABLE, idp=row.id, method=METHOD,
                                   detail={**detail, "error": "provider cannot be built"})
        authority = found[1]
        try:
            identity = authority.authenticate(login, password)  # type: ignore[union-attr]
        except UpstreamUnavailable as err:
            log.warning("directory %s cannot be asked: %s", row.id, err.detail or err.message)
            return PasswordOutcome(None, unavailable=UNAVAILABLE, idp=row.id, method=METHOD,
                                   detail={**detail, "error": (err.detail or "unavailable")[:200]})
        if identity is None:
            return PasswordOutcome(None, idp=row.id, method=METHOD, detail=detail)
        config = self.upstreams.config(row)
        try:
            resolved = self.linking.resolve(identity, config, signup_allowed=True)
        except LinkRefused as refused:
            return PasswordOutcome(None, refused=refused.message, refused_params=dict(refused.params), idp=row.id,
                                   method=METHOD, detail={**detail, "error": "link refused"})
        user = resolved.user  # its groups follow the directory's (linking.py: groups_asserted)
        amr, acr = session_methods(identity, config)
        return PasswordOutcome(user, amr=tuple(dict.fromkeys(["pwd", *amr])), acr=acr, idp=row.id,
                               method=METHOD, detail=detail)
