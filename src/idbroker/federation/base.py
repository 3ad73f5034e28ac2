"""The upstream-provider interface (the table of kinds, `UPSTREAMS`, is in kinds.py).

An upstream is where a user's identity lives when it is not in our own pool. Two shapes exist:

- **Redirecting upstreams** (`Upstream`: OpenID Connect, OAuth 2.0, SAML 2.0). The browser is sent
  there and comes back to ``{issuer}/idp/{id}/callback`` (SAML: ``/idp/{id}/acs``).
  ``start(ctx)`` returns where to send the browser, having put what it must check on return
  (state, nonce, PKCE verifier, SAML request id) into `ctx.state`, which the flow keeps server-side
  with the parked authorization request; ``finish(ctx, params)`` checks the response against that
  state and returns an `ExternalIdentity`, or raises `UpstreamError`.
- **Password authorities** (`PasswordAuthority`: LDAP / Active Directory). The password is typed
  on our own sign-in page; ``authenticate(login, password)`` answers with the identity, None for
  a wrong login or password (the caller cannot tell which, nor can the user), or raises
  `UpstreamUnavailable` when the directory cannot be asked.

Either way the identity ends in the one door (flow: `finish_login`) like every other sign-in: the
flow links it to a local account (never silently by an unverified or untrusted email), applies
MFA policy, terms and consent, and answers the parked request. Upstream tokens never reach clients.

Each kind is one class in this package and one entry in `UPSTREAMS` (kinds.py); presets (google, apple,
microsoft, github, ...) are data for a kind, not classes. A kind's class is built once per
configured provider with that provider's stored options and the few collaborators it uses (an
HTTP client, the clock), never the whole broker.

Authentication method references (RFC 8176) the flow adds for an upstream sign-in: ``fed``, plus
the upstream's own `amr` values when it sends them; its MFA counts only when the provider is
marked as trusted for it (`ExternalIdentity.mfa`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ..text import N_

AMR_FEDERATED = "fed"  # RFC 8176 §2: "use of a federated login"

# What the user is told, whatever the kind: the upstream said no (or the user did), its answer
# failed a check, or it could not be asked. The detail goes to the log and the audit event.
REFUSED = N_("The sign-in provider did not sign you in.")
REJECTED = N_("The sign-in provider's answer could not be accepted. Please try signing in again.")
UNAVAILABLE = N_("The sign-in provider cannot be reached right now. Please try again later.")


class UpstreamError(Exception):
    """The upstream's answer cannot be accepted (denied, bad state, bad signature, replay...).
    `message` is a message id shown to the user; `detail` goes to the log and the audit event."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(detail or message)
        self.message = message
        self.detail = detail


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be asked (down, slow, answering garbage): "try again later"."""


@dataclass(frozen=True)
class ExternalIdentity:
    """Who the upstream says signed in."""

    provider_id: str                     # our id of the configured provider: the `idp` claim
    subject: str                         # the upstream's stable id (sub, NameID, objectGUID/DN)
    email: str | None = None
    email_verified: bool = False
    claims: Mapping[str, Any] = field(default_factory=dict)   # mapped profile claims (OIDC Core §5.1 names)
    groups: tuple[str, ...] = ()
    # The upstream said which groups the user is in (its groups claim or attribute was there, or a
    # directory was asked): the account's groups follow it at each sign-in. Otherwise they are kept.
    groups_asserted: bool = False
    amr: tuple[str, ...] = ()            # the upstream's own amr values, when it sent any
    mfa: bool = False                    # the upstream asserted multi-factor authentication


@dataclass(frozen=True)
class UpstreamConfig:
    """One configured provider (`idbroker idp add`), as its kind's class is built with it. Secrets
    in `options` are already decrypted; the class must never log them."""

    id: str                              # ours: in URLs ({issuer}/idp/{id}/...) and the `idp` claim
    kind: str                            # the UPSTREAMS key
    name: str                            # shown on the sign-in button
    options: Mapping[str, Any] = field(default_factory=dict)   # the kind's own (issuer, client_id, url...)
    trust_email: bool = False            # its verified emails may link to existing local accounts
    trust_mfa: bool = False              # its MFA assertion stands in for our second factor
    domains: tuple[str, ...] = ()        # home-realm discovery: addresses in these domains go here


@dataclass
class StartContext:
    """What `start` needs and what it leaves for `finish`."""

    callback_url: str                    # {issuer}/idp/{id}/callback (or /acs)
    login_hint: str | None = None
    state: dict[str, Any] = field(default_factory=dict)  # kept server-side until the callback


class Upstream(Protocol):
    kind: ClassVar[str]

    async def start(self, ctx: StartContext) -> str:
        """The URL to send the browser to (SAML Redirect binding included); may fetch the
        upstream's metadata (discovery, IdP metadata) first."""
        ...

    async def finish(self, ctx: StartContext, params: Mapping[str, str]) -> ExternalIdentity:
        """Checks the upstream's response (query or form parameters) against `ctx.state`."""
        ...


class PasswordAuthority(Protocol):
    kind: ClassVar[str]

    def authenticate(self, login: str, password: str) -> ExternalIdentity | None: ...

